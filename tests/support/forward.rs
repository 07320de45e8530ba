//! What the forwarder tests share: an edge (the real `outpost serve`, restartable on the same
//! data directory) configured to forward to a real Kafka, deterministic records, and the
//! exactly-once check of what landed upstream against what the edge acknowledged.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use outpost::client::Client;
use outpost::storage::{Acks, Record};

use crate::kafka::{KRecord, Kafka};
use crate::support::{Server, TempDir};

/// One route: edge topic, upstream topic, partitioning ("same" or "key-hash").
pub type RouteSpec<'a> = (&'a str, &'a str, &'a str);

/// An edge gateway: a temp dir with a board and a config forwarding to `bootstrap`.
pub struct Edge {
    pub dir: TempDir,
    pub board: PathBuf,
    pub config: PathBuf,
    pub server: Option<Server>,
}

impl Edge {
    /// `storage` and `forwarder` are extra `key = value` lines for those tables.
    pub fn new(
        name: &str,
        bootstrap: &str,
        gateway: &str,
        routes: &[RouteSpec<'_>],
        board: (&str, &str),
        storage: &[&str],
        forwarder: &[&str],
    ) -> Edge {
        let dir = TempDir::new(name);
        let board = dir.board(board.0, board.1, "64 KiB", "32 KiB");
        let mut text = String::from("[storage]\ncorruption_policy = \"refuse\"\n");
        if !storage.iter().any(|l| l.starts_with("full_policy")) {
            text.push_str("full_policy = \"reject\"\n");
        }
        for l in storage {
            text.push_str(l);
            text.push('\n');
        }
        text.push_str(&format!(
            "\n[forwarder]\nbootstrap_servers = [\"{bootstrap}\"]\ngateway_id = \"{gateway}\"\n"
        ));
        // Test defaults: quick retries and timeouts; a line in `forwarder` replaces its key.
        let defaults = [
            "cursor_topic = \"cursors\"",
            "retry_ms_min = 50",
            "retry_ms_max = 1000",
            "request_timeout_ms = 3000",
            "transaction_timeout_ms = 15000",
            "linger_ms = 10",
        ];
        let key = |l: &str| l.split('=').next().unwrap_or("").trim().to_owned();
        for d in defaults {
            if !forwarder.iter().any(|l| key(l) == key(d)) {
                text.push_str(d);
                text.push('\n');
            }
        }
        for l in forwarder {
            text.push_str(l);
            text.push('\n');
        }
        for (edge, up, how) in routes {
            text.push_str(&format!(
                "\n[[forwarder.route]]\nedge_topic = \"{edge}\"\nupstream_topic = \"{up}\"\n\
                 partitioning = \"{how}\"\n"
            ));
        }
        let config = dir.path().join("outpost.toml");
        std::fs::write(&config, text).unwrap();
        Edge {
            dir,
            board,
            config,
            server: None,
        }
    }

    pub fn start(&mut self) -> &Server {
        assert!(self.server.is_none(), "the edge is already running");
        let s = Server::start(&self.board, &self.dir.data(), Some(&self.config));
        self.server.insert(s)
    }

    pub fn server(&self) -> &Server {
        self.server.as_ref().expect("the edge is not running")
    }

    pub fn client(&self) -> Client {
        self.server().client()
    }

    /// SIGKILL (a crash: nothing is flushed or closed).
    pub fn kill(&mut self) {
        if let Some(s) = self.server.take() {
            s.kill9();
        }
    }

    pub fn log(&self) -> String {
        self.server.as_ref().map(|s| s.log()).unwrap_or_default()
    }
}

/// The timestamps of `numbered` records start at the time of the first call: recent, because
/// Kafka rolls and deletes (retention.ms, 7 days by default) segments whose record
/// timestamps are older than that, whatever the wall clock says at append.
fn base_ms() -> i64 {
    static BASE: std::sync::OnceLock<i64> = std::sync::OnceLock::new();
    *BASE.get_or_init(|| {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as i64)
    })
}

/// Record `i` of an edge partition: a key on even numbers, a header, a distinct timestamp.
pub fn numbered(topic: &str, partition: u32, i: u64) -> Record {
    Record {
        timestamp_ms: base_ms() + i as i64,
        key: i
            .is_multiple_of(2)
            .then(|| format!("k{}", i % 97).into_bytes()),
        value: format!("{topic}/{partition}/{i}").into_bytes(),
        headers: vec![("n".to_owned(), i.to_string().into_bytes())],
    }
}

/// Produces records `from..from + count` of `numbered` to `topic/partition` in batches of
/// `batch`, durable; returns their offsets' end. Panics on any error but BUFFER_FULL, which
/// it returns as `Err(produced so far)`.
pub fn produce_numbered(
    client: &Client,
    topic: &str,
    partition: u32,
    from: u64,
    count: u64,
    batch: u64,
) -> Result<u64, u64> {
    smol::block_on(async {
        let mut i = from;
        while i < from + count {
            let n = batch.min(from + count - i);
            let recs: Vec<Record> = (i..i + n).map(|j| numbered(topic, partition, j)).collect();
            match client
                .produce(topic, Some(partition), Acks::Durable, &recs)
                .await
            {
                Ok(Some(p)) => assert_eq!(p.base_offset, i, "edge offsets are the record numbers"),
                Ok(None) => unreachable!("durable produce is acknowledged"),
                Err(e) if e.to_string().contains("BUFFER_FULL") => return Err(i - from),
                Err(e) => panic!("produce {topic}/{partition} at {i}: {e}"),
            }
            i += n;
        }
        Ok(i)
    })
}

/// Polls the upstream topic (read_committed) until it holds `want` records, or panics after
/// `timeout` with what it saw and the edge's log.
pub fn wait_upstream(
    k: &Kafka,
    topic: &str,
    want: usize,
    timeout: Duration,
    edge: &Edge,
) -> Vec<KRecord> {
    let deadline = Instant::now() + timeout;
    loop {
        let got = k.consume_all(topic, true);
        if got.len() >= want {
            return got;
        }
        if Instant::now() >= deadline {
            panic!(
                "upstream {topic} holds {} of {want} records after {timeout:?}; edge log:\n{}",
                got.len(),
                edge.log()
            );
        }
        std::thread::sleep(Duration::from_millis(500));
    }
}

/// Lost, duplicated and reordered edge records in an upstream view.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Counts {
    pub lost: u64,
    pub duplicated: u64,
    pub reordered: u64,
    /// Records whose content differs from what the edge stored.
    pub altered: u64,
}

/// Checks `upstream` (one upstream topic, routed "same") against the edge records
/// `numbered(edge_topic, p, 0..ends[p])`: every record once, in edge-offset order per
/// partition, content and origin headers intact. Gap records are skipped (counted apart).
pub fn check(upstream: &[KRecord], gateway: &str, edge_topic: &str, ends: &[u64]) -> Counts {
    let mut c = Counts::default();
    let mut seen: BTreeMap<(u32, u64), u32> = BTreeMap::new();
    let mut last: BTreeMap<i32, u64> = BTreeMap::new();
    for r in upstream {
        if r.header("outpost.gap").is_some() {
            continue;
        }
        assert_eq!(r.header_str("outpost.gateway"), Some(gateway), "{r:?}");
        assert_eq!(r.header_str("outpost.topic"), Some(edge_topic), "{r:?}");
        let p: u32 = r.header_str("outpost.partition").unwrap().parse().unwrap();
        let o: u64 = r.header_str("outpost.offset").unwrap().parse().unwrap();
        assert_eq!(
            r.partition as u32, p,
            "\"same\" routing keeps the partition"
        );
        if let Some(&prev) = last.get(&r.partition)
            && o <= prev
        {
            c.reordered += 1;
        }
        last.insert(r.partition, o);
        *seen.entry((p, o)).or_default() += 1;
        let want = numbered(edge_topic, p, o);
        let mut headers = want.headers.clone();
        headers.extend([
            ("outpost.gateway".to_owned(), gateway.as_bytes().to_vec()),
            ("outpost.topic".to_owned(), edge_topic.as_bytes().to_vec()),
            ("outpost.partition".to_owned(), p.to_string().into_bytes()),
            ("outpost.offset".to_owned(), o.to_string().into_bytes()),
        ]);
        if r.key != want.key
            || r.value.as_deref() != Some(&want.value[..])
            || r.timestamp_ms != want.timestamp_ms
            || r.headers != headers
        {
            c.altered += 1;
        }
    }
    for (p, &end) in ends.iter().enumerate() {
        for o in 0..end {
            match seen.get(&(p as u32, o)) {
                None => c.lost += 1,
                Some(&n) => c.duplicated += u64::from(n - 1),
            }
        }
    }
    c
}

/// The committed cursors of `gateway` (key `gateway/topic/partition`) → (ring id, next).
pub fn cursors(k: &Kafka, topic: &str, gateway: &str) -> BTreeMap<String, (u64, u64)> {
    let mut out = BTreeMap::new();
    for r in k.consume_all(topic, true) {
        let key = String::from_utf8(r.key.clone().unwrap()).unwrap();
        if !key.starts_with(&format!("{gateway}/")) {
            continue;
        }
        let v = r.value.clone().unwrap();
        assert_eq!(&v[..5], b"OPCR\x01", "cursor value {v:02x?}");
        let ring = u64::from_le_bytes(v[8..16].try_into().unwrap());
        let next = u64::from_le_bytes(v[16..24].try_into().unwrap());
        out.insert(key, (ring, next));
    }
    out
}
