//! The forwarder against a real Apache Kafka (issue 6's proof, first part), one Kafka for
//! three scenarios run one after the other, each with its own topics and gateway id:
//! - round trip: 10,000 records produced on the edge with the uplink up all land upstream,
//!   in order per partition, with their content and origin headers, read by librdkafka
//!   with read_committed; the cursor topic matches the edge;
//! - outage: produced while the proxy refuses connections (nothing lands, the ring keeps
//!   it), then restored: everything drains once, in order, while new records keep being
//!   accepted;
//! - upstream restart mid-drain: the Kafka process is stopped and started again while a
//!   backlog drains;
//! - key-hash routing: keyed records land where Kafka's default partitioner puts their key,
//!   keyless ones on the edge partition's number modulo the upstream count, each edge
//!   partition in order within every upstream partition.

mod support;

#[path = "support/kafka.rs"]
mod kafka;

#[path = "support/forward.rs"]
mod forward;

use std::time::Duration;

use forward::{Counts, Edge, check, cursors, produce_numbered, wait_upstream};
use kafka::{Fault, Kafka};
use outpost::client::{Client, ForwardLink, ForwarderStatus};

const DRAIN: Duration = Duration::from_secs(120);

/// The forwarder's status once `ready` holds (it is refreshed about once per retry and after
/// each commit); panics with the last one seen after 20 s.
fn poll_status(c: &Client, ready: impl Fn(&ForwarderStatus) -> bool) -> ForwarderStatus {
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    loop {
        let st = smol::block_on(c.forwarder_status()).unwrap();
        if ready(&st) || std::time::Instant::now() > deadline {
            return st;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn assert_exact(c: Counts, what: &str) {
    println!(
        "{what}: lost {}, duplicated {}, reordered {}, altered {}",
        c.lost, c.duplicated, c.reordered, c.altered
    );
    assert_eq!(c, Counts::default(), "{what}");
}

#[test]
fn round_trip_outage_and_upstream_restart() {
    let (mut k, proxy) = Kafka::start_behind_proxy("forward");
    k.create_topic("cursors", 3, true);

    // --- Round trip: 10,000 records over 3 partitions, uplink up. ---
    k.create_topic("rt-up", 3, false);
    let mut edge = Edge::new(
        "fwd-rt",
        &k.edge_bootstrap(),
        "gw-rt",
        &[("rt", "rt-up", "same")],
        ("256 KiB", "16 MiB"),
        &[],
        &[],
    );
    edge.start();
    let c = edge.client();
    smol::block_on(c.create_topic("rt", 3)).unwrap();
    let ends = [4000u64, 3500, 2500];
    for (p, &n) in ends.iter().enumerate() {
        produce_numbered(&c, "rt", p as u32, 0, n, 250).unwrap();
    }
    let up = wait_upstream(&k, "rt-up", 10_000, DRAIN, &edge);
    assert_eq!(up.len(), 10_000, "nothing more than the edge records");
    assert_exact(check(&up, "gw-rt", "rt", &ends), "round trip");
    let cur = cursors(&k, "cursors", "gw-rt");
    for (p, &n) in ends.iter().enumerate() {
        let (_, next) = cur[&format!("gw-rt/rt/{p}")];
        assert_eq!(next, n, "cursor of partition {p} names the edge end");
    }
    let ring_ids: std::collections::BTreeSet<u64> = cur.values().map(|v| v.0).collect();
    assert_eq!(ring_ids.len(), 1, "one ring");
    drop(c);
    edge.kill();

    // --- Outage: produce while the uplink refuses, then restore and drain. ---
    k.create_topic("out-up", 2, false);
    let mut edge = Edge::new(
        "fwd-outage",
        &k.edge_bootstrap(),
        "gw-out",
        &[("out", "out-up", "same")],
        ("256 KiB", "16 MiB"),
        &[],
        &[],
    );
    proxy.set(Fault::Refuse);
    edge.start();
    let c = edge.client();
    smol::block_on(c.create_topic("out", 2)).unwrap();
    produce_numbered(&c, "out", 0, 0, 3000, 200).unwrap();
    produce_numbered(&c, "out", 1, 0, 2000, 200).unwrap();
    std::thread::sleep(Duration::from_secs(2));
    assert!(
        k.consume_all("out-up", false).is_empty(),
        "nothing crosses a refusing uplink"
    );
    assert!(proxy.connections_refused() > 0, "the forwarder kept trying");
    // The operator sees the outage and the backlog (the status is refreshed about once per
    // retry, so poll rather than trust one look).
    let behind_of = |st: &ForwarderStatus| -> Vec<(u32, u64, bool)> {
        st.partitions
            .iter()
            .map(|p| {
                (
                    p.partition,
                    p.durable_next,
                    p.oldest_unforwarded_ms.is_some(),
                )
            })
            .collect()
    };
    let st = poll_status(&c, |st| {
        matches!(st.link, ForwardLink::BackingOff | ForwardLink::Connecting)
            && st.last_error.is_some()
            && behind_of(st) == [(0, 3000, true), (1, 2000, true)]
    });
    assert!(st.configured);
    assert!(
        matches!(st.link, ForwardLink::BackingOff | ForwardLink::Connecting),
        "{st:?}"
    );
    assert!(st.last_error.is_some(), "{st:?}");
    assert_eq!(
        behind_of(&st),
        vec![(0, 3000, true), (1, 2000, true)],
        "{st:?}"
    );
    let shown = std::process::Command::new(support::BIN)
        .args(["status", "--addr", &edge.server().addr_string()])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&shown.stdout);
    println!("outpost status during the outage:\n{text}");
    assert!(shown.status.success(), "{text}");
    assert!(
        text.contains("forwarding") && text.contains("out-up"),
        "{text}"
    );
    proxy.set(Fault::Pass);
    // New publishes are accepted while the backlog drains.
    produce_numbered(&c, "out", 0, 3000, 1000, 100).unwrap();
    produce_numbered(&c, "out", 1, 2000, 1000, 100).unwrap();
    let up = wait_upstream(&k, "out-up", 7000, DRAIN, &edge);
    assert_exact(check(&up, "gw-out", "out", &[4000, 3000]), "outage");
    // Kafka answers the commit before it writes the markers; the status follows shortly.
    let st = poll_status(&c, |st| {
        st.link == ForwardLink::Connected
            && st.last_commit_ms.is_some()
            && st
                .partitions
                .iter()
                .all(|p| p.position == Some(p.durable_next))
    });
    assert_eq!(st.link, ForwardLink::Connected, "{st:?}");
    assert!(
        st.records_forwarded >= 7000 && st.last_commit_ms.is_some(),
        "{st:?}"
    );
    for p in &st.partitions {
        assert_eq!(p.position, Some(p.durable_next), "caught up: {p:?}");
    }
    drop(c);
    edge.kill();

    // --- Upstream restart in the middle of a drain. ---
    k.create_topic("rs-up", 1, false);
    let mut edge = Edge::new(
        "fwd-restart",
        &k.edge_bootstrap(),
        "gw-rs",
        &[("rs", "rs-up", "same")],
        ("256 KiB", "32 MiB"),
        &[],
        // Small transactions: the drain takes many, so the restart lands inside it.
        &["batch_bytes_max = \"8 KiB\""],
    );
    proxy.set(Fault::Refuse);
    edge.start();
    let c = edge.client();
    smol::block_on(c.create_topic("rs", 1)).unwrap();
    produce_numbered(&c, "rs", 0, 0, 20_000, 500).unwrap();
    proxy.set(Fault::Pass);
    // Wait until the drain is under way, then restart Kafka.
    let deadline = std::time::Instant::now() + DRAIN;
    loop {
        let n = k.consume_all("rs-up", true).len();
        if n > 0 {
            println!("upstream restart after {n} of 20000 records drained");
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "drain never started:\n{}",
            edge.log()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    k.stop();
    produce_numbered(&c, "rs", 0, 20_000, 1000, 500).unwrap();
    k.start_again();
    let up = wait_upstream(&k, "rs-up", 21_000, DRAIN, &edge);
    assert_exact(check(&up, "gw-rs", "rs", &[21_000]), "upstream restart");
    let cur = cursors(&k, "cursors", "gw-rs");
    assert_eq!(cur["gw-rs/rs/0"].1, 21_000);
    drop(c);
    edge.kill();

    // --- Key-hash routing: 2 edge partitions onto 3 upstream partitions. ---
    k.create_topic("kh-up", 3, false);
    let mut edge = Edge::new(
        "fwd-keyhash",
        &k.edge_bootstrap(),
        "gw-kh",
        &[("kh", "kh-up", "key-hash")],
        ("256 KiB", "16 MiB"),
        &[],
        &[],
    );
    edge.start();
    let c = edge.client();
    smol::block_on(c.create_topic("kh", 2)).unwrap();
    for p in 0..2 {
        produce_numbered(&c, "kh", p, 0, 2000, 200).unwrap();
    }
    let up = wait_upstream(&k, "kh-up", 4000, DRAIN, &edge);
    assert_eq!(up.len(), 4000);
    let mut seen = std::collections::BTreeSet::new();
    let mut last: std::collections::BTreeMap<(i32, u32), u64> = Default::default();
    for r in &up {
        let p: u32 = r.header_str("outpost.partition").unwrap().parse().unwrap();
        let o: u64 = r.header_str("outpost.offset").unwrap().parse().unwrap();
        let want = forward::numbered("kh", p, o);
        assert_eq!(r.key, want.key);
        assert_eq!(r.value.as_deref(), Some(&want.value[..]));
        let target = match &r.key {
            Some(key) => outpost::protocol::murmur2::partition_for_key(key, 3),
            None => p % 3,
        };
        assert_eq!(r.partition as u32, target, "edge {p}/{o} key {:?}", r.key);
        assert!(seen.insert((p, o)), "edge {p}/{o} twice");
        if let Some(&prev) = last.get(&(r.partition, p)) {
            assert!(
                o > prev,
                "edge partition {p} out of order in upstream {}",
                r.partition
            );
        }
        last.insert((r.partition, p), o);
    }
    assert_eq!(seen.len(), 4000);
    println!("key-hash: 4000 records over 3 upstream partitions, each once, in order");
    drop(c);
    edge.kill();
}
