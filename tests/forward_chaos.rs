//! Chaos between the edge and a real Kafka (issue 6's proof): a backlog drains while a
//! seeded fault proxy cuts connections mid-transaction, stalls them, resets them and refuses
//! them (at least 50 faults), and the real `outpost` binary is SIGKILLed and restarted at
//! least 10 times, with new records published all along into a small ring that wraps (so a
//! record released before its commit would be lost). Then a final drain: the upstream
//! read_committed view (librdkafka) must hold every edge record exactly once, in order, and
//! the cursor topic must name the edge's end. The seed is printed; OUTPOST_CHAOS_SEED
//! replays a run's fault schedule.

mod support;

#[path = "support/kafka.rs"]
mod kafka;

#[path = "support/forward.rs"]
mod forward;

use std::time::{Duration, Instant};

use forward::{Counts, Edge, check, cursors, produce_numbered, wait_upstream};
use kafka::{Fault, Kafka};
use support::Rng;

const FAULTS: u32 = 60;
const KILL_EVERY: u32 = 5;
const PARTITIONS: u32 = 2;

#[test]
fn exactly_once_through_uplink_faults_and_sigkills() {
    let seed = std::env::var("OUTPOST_CHAOS_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_nanos() as u64
        });
    println!("chaos seed {seed} (OUTPOST_CHAOS_SEED={seed} replays the fault schedule)");
    let mut rng = Rng::new(seed);

    let (k, proxy) = Kafka::start_behind_proxy("chaos");
    k.create_topic("cursors", 3, true);
    k.create_topic("ch-up", PARTITIONS, false);
    let mut edge = Edge::new(
        "fwd-chaos",
        &k.edge_bootstrap(),
        "gw-chaos",
        &[("ch", "ch-up", "same")],
        // A ring of 8 segments that the run wraps several times: a record released before
        // its upstream commit would be reclaimed unforwarded and show up as lost.
        ("256 KiB", "2 MiB"),
        &[],
        // Small transactions (many per second) and a short request timeout (stalls end fast).
        &[
            "batch_bytes_max = \"16 KiB\"",
            "request_timeout_ms = 1500",
            "retry_ms_max = 500",
        ],
    );
    proxy.set(Fault::Refuse);
    edge.start();
    let mut client = edge.client();
    smol::block_on(client.create_topic("ch", PARTITIONS)).unwrap();
    let mut ends = vec![0u64; PARTITIONS as usize];
    for p in 0..PARTITIONS {
        ends[p as usize] = produce_numbered(&client, "ch", p, 0, 8_000, 500).unwrap();
    }

    let (mut kills, mut faults, mut full) = (0u32, [0u32; 4], 0u32);
    for round in 1..=FAULTS {
        // The uplink works for a while: transactions start and commit...
        proxy.set(Fault::Pass);
        let pass_ms = rng.range(100, 600);
        if round % KILL_EVERY == 0 {
            // ...and the edge dies somewhere in the middle of one.
            std::thread::sleep(Duration::from_millis(rng.range(0, pass_ms)));
            drop(client);
            edge.kill();
            kills += 1;
            edge.start();
            client = edge.client();
        } else {
            std::thread::sleep(Duration::from_millis(pass_ms));
        }
        // ...then a fault lands, usually mid-transaction.
        let (i, fault) = match rng.range(0, 4) {
            0 => (
                0,
                Fault::CutResponse {
                    after_bytes: rng.range(50, 20_000) as usize,
                },
            ),
            1 => (1, Fault::Stall),
            2 => (2, Fault::Reset),
            _ => (3, Fault::Refuse),
        };
        faults[i] += 1;
        proxy.set(fault);
        // New records keep arriving at the edge whatever the uplink does (until the ring is
        // full of unforwarded records: then BUFFER_FULL, and only what was acknowledged
        // counts).
        for p in 0..PARTITIONS {
            let at = ends[p as usize];
            ends[p as usize] = match produce_numbered(&client, "ch", p, at, 300, 100) {
                Ok(end) => end,
                Err(n) => {
                    full += 1;
                    at + n
                }
            };
        }
        std::thread::sleep(Duration::from_millis(rng.range(50, 700)));
    }
    proxy.set(Fault::Pass);
    println!(
        "{FAULTS} uplink faults (cut mid-response {}, stall {}, reset {}, refuse {}), {kills} \
         SIGKILLs of outpost, {full} BUFFER_FULL refusals; proxy saw {} connections, killed {}",
        faults[0],
        faults[1],
        faults[2],
        faults[3],
        proxy.connections_total(),
        proxy.connections_killed()
    );
    assert!(kills >= 10);

    let total: u64 = ends.iter().sum();
    let total_wait = std::time::Instant::now() + Duration::from_secs(180);
    // The ring wrapped: forwarded segments were reclaimed during the run.
    let earliest: Vec<u64> = loop {
        let e: Vec<u64> = (0..PARTITIONS)
            .map(|p| {
                smol::block_on(client.list_offsets("ch", p))
                    .unwrap()
                    .earliest
            })
            .collect();
        if e.iter().any(|&x| x > 0) || std::time::Instant::now() > total_wait {
            break e;
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    println!("edge earliest offsets after the run: {earliest:?} (reclaimed after forwarding)");
    assert!(earliest.iter().any(|&x| x > 0), "the ring never wrapped");
    let started = Instant::now();
    let up = wait_upstream(&k, "ch-up", total as usize, Duration::from_secs(180), &edge);
    println!(
        "final drain of {total} edge records done {:.1} s after the last fault",
        started.elapsed().as_secs_f64()
    );
    let c = check(&up, "gw-chaos", "ch", &ends);
    println!(
        "chaos: lost {}, duplicated {}, reordered {}, altered {}",
        c.lost, c.duplicated, c.reordered, c.altered
    );
    assert_eq!(
        c,
        Counts::default(),
        "seed {seed}; edge log:\n{}",
        edge.log()
    );
    assert_eq!(up.len() as u64, total, "nothing but the edge records");
    let cur = cursors(&k, "cursors", "gw-chaos");
    for p in 0..PARTITIONS {
        assert_eq!(
            cur[&format!("gw-chaos/ch/{p}")].1,
            ends[p as usize],
            "the cursor of partition {p} names the edge end"
        );
    }
    drop(client);
    edge.kill();
}
