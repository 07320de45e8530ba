//! A ring full of unforwarded records while the uplink is down (issue 6's proof, last part),
//! against a real Kafka:
//! - `full_policy = "reject"`: producers get BUFFER_FULL, nothing acknowledged is lost: once
//!   the uplink is back every acknowledged record lands upstream exactly once, and the ring
//!   accepts records again;
//! - `full_policy = "drop-oldest"`: the ring drops its oldest unforwarded records, and a gap
//!   record upstream names exactly the lost edge offsets, before the records that follow;
//! - a cursor topic that is not compacted is refused: nothing is forwarded, the status says
//!   why, and the records stay in the ring.

mod support;

#[path = "support/kafka.rs"]
mod kafka;

#[path = "support/forward.rs"]
mod forward;

use std::time::Duration;

use forward::{Counts, Edge, check, produce_numbered, wait_upstream};
use kafka::{Fault, Kafka};

const DRAIN: Duration = Duration::from_secs(120);
/// 4 segments of 128 KiB: a few thousand records fill it.
const BOARD: (&str, &str) = ("128 KiB", "512 KiB");

#[test]
fn full_ring_rejects_or_announces_the_gap() {
    let (k, proxy) = Kafka::start_behind_proxy("forward-full");
    k.create_topic("cursors", 1, true);

    // --- reject: BUFFER_FULL while the uplink is down, nothing acknowledged lost. ---
    k.create_topic("rej-up", 1, false);
    let mut edge = Edge::new(
        "fwd-reject",
        &k.edge_bootstrap(),
        "gw-rej",
        &[("rej", "rej-up", "same")],
        BOARD,
        &["full_policy = \"reject\""],
        &[],
    );
    proxy.set(Fault::Refuse);
    edge.start();
    let c = edge.client();
    smol::block_on(c.create_topic("rej", 1)).unwrap();
    let acked = match produce_numbered(&c, "rej", 0, 0, 1_000_000, 100) {
        Ok(n) => panic!("{n} records fit in a 512 KiB ring without BUFFER_FULL"),
        Err(n) => n,
    };
    println!("reject: BUFFER_FULL after {acked} acknowledged records");
    assert!(acked > 1000, "the ring held only {acked} records");
    // Still full: a retry is refused too, and nothing was lost meanwhile.
    assert_eq!(produce_numbered(&c, "rej", 0, acked, 100, 100), Err(0));
    assert!(k.consume_all("rej-up", false).is_empty());
    proxy.set(Fault::Pass);
    let up = wait_upstream(&k, "rej-up", acked as usize, DRAIN, &edge);
    let counts = check(&up, "gw-rej", "rej", &[acked]);
    println!(
        "reject: lost {}, duplicated {}",
        counts.lost, counts.duplicated
    );
    assert_eq!(counts, Counts::default());
    // Forwarded and committed: released, so the ring takes records again.
    let deadline = std::time::Instant::now() + DRAIN;
    let end = loop {
        match produce_numbered(&c, "rej", 0, acked, 1000, 100) {
            Ok(end) => break end,
            Err(n) => {
                assert!(
                    std::time::Instant::now() < deadline,
                    "still BUFFER_FULL after the drain ({n} accepted):\n{}",
                    edge.log()
                );
                std::thread::sleep(Duration::from_millis(200));
            }
        }
    };
    let up = wait_upstream(&k, "rej-up", end as usize, DRAIN, &edge);
    assert_eq!(check(&up, "gw-rej", "rej", &[end]), Counts::default());
    drop(c);
    edge.kill();

    // --- drop-oldest: the oldest unforwarded records go, a gap record says which. ---
    k.create_topic("drop-up", 1, false);
    let mut edge = Edge::new(
        "fwd-drop",
        &k.edge_bootstrap(),
        "gw-drop",
        &[("drop", "drop-up", "same")],
        BOARD,
        &["full_policy = \"drop-oldest\""],
        &[],
    );
    proxy.set(Fault::Refuse);
    edge.start();
    let c = edge.client();
    smol::block_on(c.create_topic("drop", 1)).unwrap();
    let total = produce_numbered(&c, "drop", 0, 0, 30_000, 100).expect("drop-oldest never refuses");
    let offsets = smol::block_on(c.list_offsets("drop", 0)).unwrap();
    let lost = offsets.earliest;
    assert!(lost > 0, "30,000 records must overflow the ring");
    assert_eq!(offsets.next, total);
    println!(
        "drop-oldest: the ring dropped edge offsets 0..={}",
        lost - 1
    );
    proxy.set(Fault::Pass);
    let up = wait_upstream(&k, "drop-up", (total - lost + 1) as usize, DRAIN, &edge);
    let gaps: Vec<_> = up
        .iter()
        .filter(|r| r.header("outpost.gap").is_some())
        .collect();
    assert_eq!(gaps.len(), 1, "one gap record: {gaps:?}");
    let gap = gaps[0];
    assert_eq!(
        gap.header_str("outpost.gap"),
        Some(format!("0-{}", lost - 1).as_str())
    );
    assert_eq!(gap.header_str("outpost.gap.reason"), Some("reclaimed"));
    assert_eq!(gap.header_str("outpost.gateway"), Some("gw-drop"));
    assert_eq!(gap.header_str("outpost.topic"), Some("drop"));
    assert_eq!(gap.header_str("outpost.partition"), Some("0"));
    assert_eq!(gap.offset, up[0].offset, "the gap record comes first");
    let counts = check(&up, "gw-drop", "drop", &[total]);
    println!(
        "drop-oldest: gap record {:?}; lost {} (= the gap), duplicated {}, reordered {}",
        gap.header_str("outpost.gap"),
        counts.lost,
        counts.duplicated,
        counts.reordered
    );
    assert_eq!(
        counts,
        Counts {
            lost,
            ..Counts::default()
        },
        "exactly the gap's offsets are missing"
    );
    assert_eq!(up.len() as u64, total - lost + 1);
    drop(c);
    edge.kill();

    // --- A cursor topic with cleanup.policy=delete is refused. ---
    k.create_topic("bad-cursors", 1, false);
    k.create_topic("bc-up", 1, false);
    let mut edge = Edge::new(
        "fwd-badcursor",
        &k.edge_bootstrap(),
        "gw-bc",
        &[("bc", "bc-up", "same")],
        BOARD,
        &[],
        &["cursor_topic = \"bad-cursors\""],
    );
    edge.start();
    let c = edge.client();
    smol::block_on(c.create_topic("bc", 1)).unwrap();
    produce_numbered(&c, "bc", 0, 0, 100, 100).unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    let st = loop {
        let st = smol::block_on(c.forwarder_status()).unwrap();
        if st
            .last_error
            .as_deref()
            .is_some_and(|e| e.contains("compacted"))
        {
            break st;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "{st:?}\n{}",
            edge.log()
        );
        std::thread::sleep(Duration::from_millis(100));
    };
    println!(
        "non-compacted cursor topic: {}",
        st.last_error.unwrap_or_default()
    );
    assert_eq!(st.records_forwarded, 0);
    assert!(
        k.consume_all("bc-up", false).is_empty(),
        "nothing forwarded"
    );
    let o = smol::block_on(c.list_offsets("bc", 0)).unwrap();
    assert_eq!(
        (o.earliest, o.next),
        (0, 100),
        "the records stay in the ring"
    );
    drop(c);
    edge.kill();
}
