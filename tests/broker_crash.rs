//! Crash: the real `outpost serve` under produce load with `acks = durable`, killed with
//! SIGKILL at a random moment (seeded: 50–400 ms after the load starts) again and again, and
//! restarted on the same data directory each time.
//!
//! The producer runs in this process: several produce calls in flight on one client, batches
//! of 1–3 records, every value unique (`r-<round>-<seq>`). It keeps every value it attempted
//! (with the whole record) and every acknowledged (partition, offset, value). After each
//! restart, and at the end, everything stored is fetched and checked:
//!
//! - offsets are contiguous from 0 in every partition;
//! - every acknowledged record is at its acknowledged offset with its value, in order;
//! - everything stored was really sent: its value is one the producer attempted and the
//!   record is exactly the one attempted (key, headers, timestamp: nothing corrupt), and no
//!   value is stored twice;
//! - a batch is stored whole or not at all, contiguously, in its order;
//! - what a previous check found stored is still stored, unchanged.
//!
//! `OUTPOST_CRASH_SEED` replays another seed; `OUTPOST_CRASH_ROUNDS` changes the number of kills.

mod support;

use std::collections::{HashMap, HashSet};
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use outpost::client::{Client, ClientError};
use outpost::storage::{Acks, Record};
use support::{Rng, Server, TempDir, fetch_all};

const TOPIC: &str = "load";
const PARTITIONS: u32 = 3;
/// Produce calls in flight at once.
const PRODUCERS: usize = 8;
const DEFAULT_ROUNDS: usize = 24;
const DEFAULT_SEED: u64 = 0xC0FF_EE00_D15C_0001;
/// Records a round sends at most (about 25k/s are acknowledged on a 2-core machine, and a
/// round lasts at most 400 ms), so that the default rounds never fill the 64 MiB ring (about
/// 105 bytes a record) whatever the machine's speed.
const ROUND_RECORDS_MAX: u64 = 12_000;

/// What the producer did, shared by its tasks.
#[derive(Default)]
struct Ledger {
    /// Every value sent (or about to be): the record, its batch and its place in the batch.
    attempted: HashMap<Vec<u8>, (u64, usize, Record)>,
    /// Every batch sent: its values in order.
    batches: HashMap<u64, Vec<Vec<u8>>>,
    /// Every acknowledged record: (partition, offset, value).
    acked: Vec<(u32, u64, Vec<u8>)>,
    /// How the produce calls of the last round ended, other than acknowledged.
    errors: Vec<String>,
}

fn env_or<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name)
        .ok()
        .and_then(|v| {
            let v = v.trim();
            match v.strip_prefix("0x") {
                Some(hex) => u64::from_str_radix(hex, 16).ok()?.to_string().parse().ok(),
                None => v.parse().ok(),
            }
        })
        .unwrap_or(default)
}

/// One producer task: sends batches until a call fails (the broker was killed), or the round
/// sent `ROUND_RECORDS_MAX` records.
async fn produce_loop(
    client: Arc<Client>,
    ledger: Arc<Mutex<Ledger>>,
    round: usize,
    seq: Arc<AtomicU64>,
    batch_ids: Arc<AtomicU64>,
) {
    while seq.load(Ordering::Relaxed) < ROUND_RECORDS_MAX {
        let batch = batch_ids.fetch_add(1, Ordering::Relaxed);
        let n = 1 + (batch % 3) as usize;
        let keyed = batch.is_multiple_of(2);
        let records: Vec<Record> = (0..n)
            .map(|i| {
                let s = seq.fetch_add(1, Ordering::Relaxed);
                Record {
                    timestamp_ms: s as i64,
                    key: keyed.then(|| format!("k{}", batch % 7).into_bytes()),
                    value: format!("r-{round}-{s}").into_bytes(),
                    headers: vec![
                        ("batch".into(), batch.to_le_bytes().to_vec()),
                        ("i".into(), vec![i as u8]),
                    ],
                }
            })
            .collect();
        {
            let mut l = ledger.lock().unwrap();
            for (i, r) in records.iter().enumerate() {
                let fresh = l
                    .attempted
                    .insert(r.value.clone(), (batch, i, r.clone()))
                    .is_none();
                assert!(fresh, "value {:?} attempted twice", r.value);
            }
            l.batches
                .insert(batch, records.iter().map(|r| r.value.clone()).collect());
        }
        match client.produce(TOPIC, None, Acks::Durable, &records).await {
            Ok(Some(at)) => {
                assert_eq!(at.count as usize, n);
                let mut l = ledger.lock().unwrap();
                for (i, r) in records.iter().enumerate() {
                    l.acked
                        .push((at.partition, at.base_offset + i as u64, r.value.clone()));
                }
            }
            Ok(None) => panic!("a durable produce returned no answer"),
            Err(e) => {
                let refused = matches!(e, ClientError::Server { .. });
                ledger.lock().unwrap().errors.push(e.to_string());
                // The broker refusing a request (rather than dying) is not expected here.
                assert!(!refused, "the broker refused a produce: {e}");
                return;
            }
        }
    }
}

/// What the checks found, for the totals.
#[derive(Default, Debug)]
struct Totals {
    present: usize,
    acked: usize,
    extra: usize,
}

/// Fetches every partition and checks it against the ledger and against what the previous
/// check found (`stored`, updated).
fn check(
    client: &Client,
    ledger: &Ledger,
    stored: &mut Vec<Vec<(u64, Record)>>,
    when: &str,
) -> Totals {
    let mut now: Vec<Vec<(u64, Record)>> = Vec::new();
    smol::block_on(async {
        for p in 0..PARTITIONS {
            let offsets = client.list_offsets(TOPIC, p).await.unwrap();
            assert_eq!(
                offsets.earliest, 0,
                "{when}: partition {p} was reclaimed from (the ring is too small for the test)"
            );
            let records = fetch_all(client, TOPIC, p, 0).await;
            assert_eq!(records.len() as u64, offsets.next, "{when}: partition {p}");
            now.push(records.into_iter().map(|r| (r.offset, r.record)).collect());
        }
    });

    let mut seen: HashSet<&[u8]> = HashSet::new();
    // value -> (partition, index)
    let mut place: HashMap<&[u8], (u32, usize)> = HashMap::new();
    for (p, records) in now.iter().enumerate() {
        let p = p as u32;
        for (i, (offset, r)) in records.iter().enumerate() {
            assert_eq!(
                *offset, i as u64,
                "{when}: partition {p}: offsets not contiguous"
            );
            let Some((_, _, sent)) = ledger.attempted.get(&r.value) else {
                panic!(
                    "{when}: partition {p} offset {offset}: {:?} was never sent (invented)",
                    String::from_utf8_lossy(&r.value)
                );
            };
            assert_eq!(
                r, sent,
                "{when}: partition {p} offset {offset}: the record differs from the one sent"
            );
            assert!(
                seen.insert(&r.value),
                "{when}: {:?} is stored twice",
                String::from_utf8_lossy(&r.value)
            );
            place.insert(&r.value, (p, i));
        }
    }

    // Every acknowledged record at its acknowledged offset.
    for (p, offset, value) in &ledger.acked {
        let got = now[*p as usize]
            .get(*offset as usize)
            .map(|(_, r)| &r.value);
        assert_eq!(
            got,
            Some(value),
            "{when}: the acknowledged {:?} is not at partition {p} offset {offset}",
            String::from_utf8_lossy(value)
        );
    }

    // Batches: whole or absent, contiguous and in order.
    for (batch, values) in &ledger.batches {
        let places: Vec<Option<&(u32, usize)>> =
            values.iter().map(|v| place.get(v.as_slice())).collect();
        if places.iter().all(Option::is_none) {
            continue;
        }
        let Some(&(p, first)) = places[0] else {
            panic!("{when}: batch {batch} is stored in part: {places:?}");
        };
        for (i, at) in places.iter().enumerate() {
            assert_eq!(
                *at,
                Some(&(p, first + i)),
                "{when}: batch {batch} is not stored whole and contiguous: {places:?}"
            );
        }
    }

    // What was stored before is still stored, unchanged.
    for (p, before) in stored.iter().enumerate() {
        assert!(
            now[p].len() >= before.len() && now[p][..before.len()] == before[..],
            "{when}: partition {p} lost or changed records found by an earlier check \
             ({} before, {} now)",
            before.len(),
            now[p].len()
        );
    }

    let present: usize = now.iter().map(Vec::len).sum();
    *stored = now;
    Totals {
        present,
        acked: ledger.acked.len(),
        extra: present - ledger.acked.len(),
    }
}

fn start(board: &Path, dir: &TempDir) -> (Server, Arc<Client>) {
    let server = Server::start(board, &dir.data(), None);
    let client = Arc::new(server.client());
    (server, client)
}

#[test]
fn sigkill_under_durable_load_loses_nothing_acknowledged_and_invents_nothing() {
    let seed = env_or("OUTPOST_CRASH_SEED", DEFAULT_SEED);
    let rounds = env_or("OUTPOST_CRASH_ROUNDS", DEFAULT_ROUNDS).max(1);
    eprintln!("crash test: seed {seed:#x} (OUTPOST_CRASH_SEED), {rounds} SIGKILLs");
    let mut rng = Rng::new(seed);
    let dir = TempDir::new("crash");
    // A 64 MiB ring of 32 segments: large enough that the test never wraps it.
    let board = dir.board("2 MiB", "64 MiB", "64 KiB", "4 KiB");
    let ledger = Arc::new(Mutex::new(Ledger::default()));
    let mut stored: Vec<Vec<(u64, Record)>> = Vec::new();
    let batch_ids = Arc::new(AtomicU64::new(0));
    let started = Instant::now();

    let (mut server, mut client) = start(&board, &dir);
    smol::block_on(client.create_topic(TOPIC, PARTITIONS)).unwrap();
    let mut kills = 0;
    for round in 0..rounds {
        // Load: PRODUCERS produce calls in flight on one connection.
        ledger.lock().unwrap().errors.clear();
        let seq = Arc::new(AtomicU64::new(0));
        let tasks: Vec<_> = (0..PRODUCERS)
            .map(|_| {
                smol::spawn(produce_loop(
                    client.clone(),
                    ledger.clone(),
                    round,
                    seq.clone(),
                    batch_ids.clone(),
                ))
            })
            .collect();
        let delay = Duration::from_millis(rng.range(50, 401));
        std::thread::sleep(delay);
        server.kill9();
        kills += 1;
        // Every call in flight fails once the connection is gone.
        let deadline = Duration::from_secs(20);
        smol::block_on(async {
            let all = async {
                for t in tasks {
                    t.await;
                }
                true
            };
            let timeout = async {
                smol::Timer::after(deadline).await;
                false
            };
            assert!(
                smol::future::or(all, timeout).await,
                "round {round}: produce calls still pending {deadline:?} after the broker \
                 was killed"
            );
        });
        drop(client);

        (server, client) = start(&board, &dir);
        let l = ledger.lock().unwrap();
        // The topic survived.
        let topics = smol::block_on(client.list_topics()).unwrap();
        assert_eq!(topics.len(), 1);
        assert_eq!(
            (topics[0].name.as_str(), topics[0].partitions),
            (TOPIC, PARTITIONS)
        );
        let t = check(&client, &l, &mut stored, &format!("after kill {kills}"));
        eprintln!(
            "kill {kills:2} after {:3} ms: {} sent, {} acked, {} present ({} extra but \
             sent); calls ended with: {}",
            delay.as_millis(),
            seq.load(Ordering::Relaxed),
            t.acked,
            t.present,
            t.extra,
            l.errors.first().map_or("-", String::as_str),
        );
    }

    // At the end: the same checks, then a clean stop and one more restart.
    let l = ledger.lock().unwrap();
    let t = check(&client, &l, &mut stored, "at the end");
    let status = smol::block_on(client.status()).unwrap();
    drop(client);
    assert_eq!(server.terminate(), 0);
    let (server, client) = start(&board, &dir);
    let after = check(&client, &l, &mut stored, "after a clean restart");
    assert_eq!(after.present, t.present);
    drop(client);
    assert_eq!(server.terminate(), 0);
    eprintln!(
        "crash test: {kills} SIGKILLs in {:?}; {} attempted, {} acknowledged, {} present \
         ({} present but never acknowledged, all really sent); ring use {} of {} bytes",
        started.elapsed(),
        l.attempted.len(),
        t.acked,
        t.present,
        t.extra,
        status.ring_used_bytes,
        status.ring_bytes,
    );
    assert!(kills >= 20 || rounds < 20);
    assert!(t.acked > 0, "nothing was ever acknowledged");
}
