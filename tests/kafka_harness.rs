//! The Kafka test harness itself (tests/support/kafka.rs and proxy.rs) works: a real Kafka
//! behind the fault proxy, transactions committed and aborted by a real client through the
//! proxy, read back exactly with read_committed; each proxy fault does what it says; a
//! stop and restart keeps the data.
//!
//! Needs `make kafka venv` (run by `make test`); without them it fails, it never skips.

#[path = "support/kafka.rs"]
mod kafka;

use std::io::{ErrorKind, Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use kafka::{Fault, KRecord, Kafka, Txn, proxy};

/// A raw ApiVersions v0 request (header v1, null client id), correlation id 7: the smallest
/// thing that makes Kafka answer, to watch bytes cross the proxy.
const API_VERSIONS_V0: [u8; 14] = [0, 0, 0, 10, 0, 18, 0, 0, 0, 0, 0, 7, 0xff, 0xff];

fn connect(port: u16) -> TcpStream {
    let s = TcpStream::connect(("127.0.0.1", port)).expect("connect to the proxy");
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    s
}

/// Sends ApiVersions and reads the whole response (its body, after the length).
fn api_versions(s: &mut TcpStream) -> std::io::Result<Vec<u8>> {
    s.write_all(&API_VERSIONS_V0)?;
    let mut len = [0u8; 4];
    s.read_exact(&mut len)?;
    let mut body = vec![0u8; u32::from_be_bytes(len) as usize];
    s.read_exact(&mut body)?;
    assert_eq!(&body[..4], &[0, 0, 0, 7], "correlation id");
    Ok(body)
}

/// Reads until EOF or error; returns the bytes and whether it ended by an error (a reset).
fn read_to_end_or_error(s: &mut TcpStream) -> (Vec<u8>, Option<ErrorKind>) {
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        match s.read(&mut buf) {
            Ok(0) => return (got, None),
            Ok(n) => got.extend_from_slice(&buf[..n]),
            Err(e) => return (got, Some(e.kind())),
        }
    }
}

fn rec(
    partition: i32,
    ts: i64,
    key: Option<&[u8]>,
    value: Option<&[u8]>,
    h: &[(&str, &[u8])],
) -> KRecord {
    KRecord {
        partition,
        offset: -1,
        key: key.map(<[u8]>::to_vec),
        value: value.map(<[u8]>::to_vec),
        timestamp_ms: ts,
        headers: h.iter().map(|(n, v)| (n.to_string(), v.to_vec())).collect(),
    }
}

#[test]
fn kafka_behind_proxy_transactions_faults_restart() {
    let t0 = Instant::now();
    let (mut k, proxy) = Kafka::start_behind_proxy("harness");
    eprintln!(
        "kafka harness: start {:?} (format {:?}, ready {:?}, txn warm-up {:?})",
        k.start_time,
        k.format_time,
        k.start_time - k.format_time - k.warm_time,
        k.warm_time
    );

    // Clients bootstrapping through the proxy are told to stay behind it; direct ones not.
    let edge_port: u16 = k
        .edge_bootstrap()
        .rsplit(':')
        .next()
        .unwrap()
        .parse()
        .unwrap();
    assert_eq!(edge_port, proxy.port());
    let plain_port: u16 = k.bootstrap().rsplit(':').next().unwrap().parse().unwrap();
    assert_eq!(
        k.advertised_brokers(&k.edge_bootstrap()),
        vec![(1, "127.0.0.1".to_string(), proxy.port())]
    );
    assert_eq!(
        k.advertised_brokers(&k.bootstrap()),
        vec![(1, "127.0.0.1".to_string(), plain_port)]
    );

    k.create_topic("h-data", 3, false);
    k.create_topic("h-cursor", 1, true);

    // A committed transaction and an aborted one, through the proxy.
    let before = proxy.connections_total();
    let committed_in = vec![
        rec(
            0,
            1_700_000_000_000,
            Some(b"k0"),
            Some(b"v0"),
            &[("origin", b"gw-1"), ("edge-offset", b"0")],
        ),
        rec(1, 1_700_000_000_001, None, Some(b""), &[]),
        rec(2, 1_700_000_000_002, Some(b""), None, &[("empty", b"")]),
        rec(
            0,
            1_700_000_000_003,
            Some(&[0, 255, 10, 32]),
            Some(&[1; 300]),
            &[("bin", &[0, 1, 2, 255])],
        ),
        rec(
            1,
            1_700_000_000_004,
            Some(b"k4"),
            Some(b"v4"),
            &[("a", b"1"), ("a", b"2")],
        ),
    ];
    let committed = k.produce(&k.edge_bootstrap(), "h-data", &committed_in, Txn::Commit);
    assert_eq!(committed.len(), committed_in.len());
    let aborted_in: Vec<KRecord> = (0..4)
        .map(|i| {
            rec(
                i % 3,
                1_700_000_001_000 + i64::from(i),
                Some(b"abort"),
                Some(b"x"),
                &[],
            )
        })
        .collect();
    let aborted = k.produce(&k.edge_bootstrap(), "h-data", &aborted_in, Txn::Abort);
    assert!(
        proxy.connections_total() > before,
        "the producer went through the proxy"
    );
    assert!(proxy.bytes().0 > 0 && proxy.bytes().1 > 0);
    // The cursor topic takes transactions too.
    let cursor = k.produce(
        &k.edge_bootstrap(),
        "h-cursor",
        &[rec(-1, -1, Some(b"gw-1/0"), Some(b"41"), &[])],
        Txn::Commit,
    );
    assert_eq!(cursor.len(), 1);

    let mut expected = committed.clone();
    expected.sort_by_key(|r| (r.partition, r.offset));
    for (r, i) in committed.iter().zip(&committed_in) {
        assert_eq!((r.partition, r.timestamp_ms), (i.partition, i.timestamp_ms));
        assert_eq!(
            (&r.key, &r.value, &r.headers),
            (&i.key, &i.value, &i.headers)
        );
    }
    let rc = k.consume_all("h-data", true);
    assert_eq!(
        rc, expected,
        "read_committed sees exactly the committed records"
    );
    let ru = k.consume_all("h-data", false);
    assert_eq!(
        ru.len(),
        committed.len() + aborted_in.len(),
        "read_uncommitted sees the aborted too: {ru:?}"
    );
    assert!(
        ru.iter()
            .filter(|r| r.key.as_deref() == Some(b"abort"))
            .count()
            == aborted_in.len()
    );
    assert!(aborted.len() <= aborted_in.len());
    assert_eq!(k.consume_all("h-cursor", true).len(), 1);
    assert_eq!(committed[0].header_str("origin"), Some("gw-1"));

    // Pass: a raw request gets its answer through the proxy.
    let mut open = connect(proxy.port());
    let full = api_versions(&mut open).expect("ApiVersions through the proxy");
    assert!(full.len() > 20);

    // Reset: the open connection dies (RST), new ones pass.
    let killed = proxy.connections_killed();
    proxy.set(Fault::Reset);
    let (_, err) = read_to_end_or_error(&mut open);
    assert_eq!(err, Some(ErrorKind::ConnectionReset), "Reset sends RST");
    assert!(proxy.connections_killed() > killed);
    assert_eq!(proxy.fault(), Fault::Pass);
    api_versions(&mut connect(proxy.port())).expect("after Reset, new connections pass");

    // Refuse: the open connection dies, a new one is accepted and reset before any byte.
    let mut open = connect(proxy.port());
    api_versions(&mut open).unwrap();
    proxy.set(Fault::Refuse);
    let (_, err) = read_to_end_or_error(&mut open);
    assert!(err.is_some(), "Refuse resets open connections");
    let refused = proxy.connections_refused();
    let mut s = connect(proxy.port());
    assert!(
        api_versions(&mut s).is_err(),
        "Refuse: a new connection fails"
    );
    assert!(proxy.connections_refused() > refused);

    // Stall: no answer while stalled, the held request is answered after Pass.
    proxy.set(Fault::Pass);
    let mut s = connect(proxy.port());
    proxy.set(Fault::Stall);
    s.write_all(&API_VERSIONS_V0).unwrap();
    s.set_read_timeout(Some(Duration::from_millis(700)))
        .unwrap();
    let mut b = [0u8; 1];
    let e = s.read(&mut b).expect_err("no byte while stalled");
    assert!(
        matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut),
        "{e:?}"
    );
    proxy.set(Fault::Pass);
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let mut len = [0u8; 4];
    s.read_exact(&mut len)
        .expect("the stalled answer arrives after Pass");
    let mut body = vec![0u8; u32::from_be_bytes(len) as usize];
    s.read_exact(&mut body).unwrap();
    assert_eq!(body, full);

    // CutResponse: exactly that many response bytes, then the connection is cut.
    proxy.set(Fault::CutResponse { after_bytes: 10 });
    let mut s = connect(proxy.port());
    s.write_all(&API_VERSIONS_V0).unwrap();
    let (got, err) = read_to_end_or_error(&mut s);
    assert_eq!(got.len(), 10, "cut after 10 response bytes");
    assert_eq!(err, Some(ErrorKind::ConnectionReset));

    // Pass recovers: the real client commits through the proxy again.
    proxy.set(Fault::Pass);
    let more = k.produce(
        &k.edge_bootstrap(),
        "h-data",
        &[rec(
            2,
            1_700_000_002_000,
            Some(b"after-faults"),
            Some(b"ok"),
            &[],
        )],
        Txn::Commit,
    );
    expected.extend(more);
    expected.sort_by_key(|r| (r.partition, r.offset));
    assert_eq!(k.consume_all("h-data", true), expected);

    // Stop and start again: same ports, same data, transactions still work.
    let t = Instant::now();
    k.stop();
    assert!(!k.is_running());
    let stop_time = t.elapsed();
    k.start_again();
    eprintln!(
        "kafka harness: stop {stop_time:?}, start_again {:?}",
        k.start_time
    );
    assert_eq!(
        k.consume_all("h-data", true),
        expected,
        "data survives a restart"
    );
    let after = k.produce(
        &k.edge_bootstrap(),
        "h-data",
        &[rec(
            0,
            1_700_000_003_000,
            Some(b"after-restart"),
            Some(b"ok"),
            &[],
        )],
        Txn::Commit,
    );
    assert_eq!(after.len(), 1);
    assert_eq!(k.consume_all("h-data", true).len(), expected.len() + 1);
    assert!(k.log_tail().contains("Kafka Server started"));

    // The bench reference runs (a tiny one here).
    k.create_topic("h-bench", 1, false);
    let b = k.txn_bench("h-bench", 2000, 100, 500, 0);
    assert_eq!((b.records, b.record_bytes), (2000, 100));
    assert!(b.records_per_s > 0.0 && b.mb_per_s > 0.0, "{}", b.line);
    assert_eq!(k.consume_all("h-bench", true).len(), 2000);
    eprintln!("kafka harness: whole test {:?}", t0.elapsed());
}

#[test]
fn random_fault_is_seeded_and_covers_every_kind() {
    let mut kinds = [0u32; 5];
    for seed in 0..1000u64 {
        let f = proxy::random_fault(seed);
        assert_eq!(f, proxy::random_fault(seed), "same seed, same fault");
        kinds[match f {
            Fault::Pass => 0,
            Fault::Refuse => 1,
            Fault::Stall => 2,
            Fault::Reset => 3,
            Fault::CutResponse { after_bytes } => {
                assert!(after_bytes < 4096);
                4
            }
        }] += 1;
    }
    assert!(kinds.iter().all(|&n| n > 100), "{kinds:?}");
}

/// CI once failed because a random cluster id started with '-' and StorageTool's argparse took
/// it for an option. Ids are 22 URL-safe base64 characters and never start with '-' or '_'.
#[test]
fn cluster_ids_never_look_like_an_option() {
    let mut seen = std::collections::HashSet::new();
    for _ in 0..10_000 {
        let id = kafka::cluster_id();
        assert_eq!(id.len(), 22, "{id}");
        assert!(
            id.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'),
            "{id}"
        );
        assert!(!id.starts_with(['-', '_']), "{id}");
        seen.insert(id);
    }
    assert!(seen.len() > 9_990, "ids repeat: {} distinct", seen.len());
}
