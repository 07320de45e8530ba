//! The broker end to end, small and fast: the real `outpost serve` on 127.0.0.1 port 0 with a
//! 1 MiB ring, spoken to with raw frames built by the protocol codec over a std `TcpStream`.
//! HELLO, CREATE_TOPIC, PRODUCE (durable) and FETCH, an unknown topic, a long poll that does
//! not hold back a PRODUCE behind it, a broken frame (GOODBYE then close), SIGTERM (exit 0),
//! and the topic and records still there after a restart. Then, in process on a simulated
//! flash: the connection and frame limits, `acks = none`, an unsupported version, the idle
//! timeout. (The full integration suite lives elsewhere.)

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, mpsc};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use outpost::broker::{Broker, server};
use outpost::config::BrokerConfig;
use outpost::protocol::body::{Response, decode_response, encode_request};
use outpost::protocol::frame::{self, Decoded, FrameHeader};
use outpost::protocol::messages::{
    CreateTopicRequest, CreateTopicResponse, Empty, FetchRequest, FetchResponse, Header,
    HelloRequest, HelloResponse, ListTopicsResponse, ProduceRequest, ProduceResponse, RecordIn,
    RecordOut, TopicInfo, WireAcks,
};
use outpost::protocol::{ErrorCode, HEADER_BYTES, Kind, Seq};
use outpost::storage::flash::{Geometry, SimFlash};
use outpost::storage::{CorruptionPolicy, FullPolicy, Ring, RingConfig};
use serde::{Deserialize, Serialize};

const BIN: &str = env!("CARGO_BIN_EXE_outpost");
const WAIT: Duration = Duration::from_secs(20);

/// A temp directory unique per test and run, removed on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn new(name: &str) -> TempDir {
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos());
        let dir = std::env::temp_dir().join(format!(
            "outpost-broker-{name}-{}-{nanos}",
            std::process::id()
        ));
        std::fs::create_dir_all(&dir).unwrap();
        TempDir(dir)
    }

    /// A small board: a 1 MiB ring of 16 segments of 64 KiB, batches of at most 4 KiB.
    fn board(&self) -> PathBuf {
        let path = self.0.join("smoke-small.toml");
        std::fs::write(
            &path,
            r#"name = "smoke-small"
target_triple = "x86_64-unknown-linux-gnu"
erase_block_bytes = "4 KiB"
program_unit_bytes = "512 B"
segment_bytes = "64 KiB"
ring_bytes = "1 MiB"
memory_budget_bytes = "16 MiB"
listen_addr = "127.0.0.1:7478"
group_bytes_max = "16 KiB"
batch_bytes_max = "4 KiB"
meta_bytes_max = "1 KiB"
partitions_max = 16
"#,
        )
        .unwrap();
        path
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A running `outpost serve` and the address it printed.
struct Server {
    child: Child,
    addr: SocketAddr,
    stderr: mpsc::Receiver<String>,
}

impl Server {
    fn start(dir: &TempDir) -> Server {
        let board = dir.board();
        let data = dir.0.join("data");
        let mut child = Command::new(BIN)
            .args(["serve", "--listen", "127.0.0.1:0", "--data"])
            .arg(&data)
            .arg("--board")
            .arg(&board)
            .env("RUST_LOG", "info")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let stderr = child.stderr.take().unwrap();
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let stdout = child.stdout.take().unwrap();
        let (atx, arx) = mpsc::channel();
        std::thread::spawn(move || {
            let mut first = String::new();
            let _ = BufReader::new(stdout).read_line(&mut first);
            let _ = atx.send(first);
        });
        let line = match arx.recv_timeout(WAIT) {
            Ok(line) => line,
            Err(_) => {
                let _ = child.kill();
                panic!("no `listening on` line within {WAIT:?}");
            }
        };
        let addr = line
            .trim_end()
            .strip_prefix("listening on ")
            .unwrap_or_else(|| {
                let _ = child.kill();
                let err: Vec<String> = lines.try_iter().collect();
                panic!(
                    "unexpected first stdout line {line:?}; stderr:\n{}",
                    err.join("\n")
                )
            })
            .parse()
            .unwrap();
        Server {
            child,
            addr,
            stderr: lines,
        }
    }

    fn connect(&self) -> Client {
        let stream = TcpStream::connect(self.addr).unwrap();
        stream.set_read_timeout(Some(WAIT)).unwrap();
        stream.set_nodelay(true).unwrap();
        Client { stream, next_id: 1 }
    }

    /// SIGTERM, then the exit code and the stderr lines.
    fn terminate(mut self) -> (i32, Vec<String>) {
        let status = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .unwrap();
        assert!(status.success());
        let deadline = Instant::now() + WAIT;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                // Until the stderr reader hits end of file (its channel closes), which can
                // come after the exit: a fixed sleep lost the last lines on a loaded machine.
                let mut lines = Vec::new();
                while let Ok(line) = self.stderr.recv_timeout(WAIT) {
                    lines.push(line);
                }
                return (status.code().expect("exited by a signal"), lines);
            }
            if Instant::now() > deadline {
                let _ = self.child.kill();
                panic!("outpost serve did not exit within {WAIT:?} of SIGTERM");
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Raw frames over a blocking socket.
struct Client {
    stream: TcpStream,
    next_id: u32,
}

/// A response frame as read: its header and body.
struct Frame {
    header: FrameHeader,
    body: Vec<u8>,
}

impl Client {
    /// Sends a request; returns its id.
    fn send<T: Serialize>(&mut self, kind: Kind, body: &T) -> u32 {
        let id = self.next_id;
        self.next_id += 1;
        let mut buf = vec![0u8; 64 * 1024];
        let n = encode_request(&mut buf, kind as u8, id, body).unwrap();
        self.stream.write_all(&buf[..n]).unwrap();
        id
    }

    /// Reads one frame, or `None` at end of stream.
    fn read(&mut self) -> Option<Frame> {
        let mut header = [0u8; HEADER_BYTES];
        match self.stream.read_exact(&mut header) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => return None,
            Err(e) => panic!("read failed: {e}"),
        }
        let Decoded::Incomplete { needed } = frame::decode(&header, u32::MAX).unwrap() else {
            // A frame with an empty body.
            let h = decoded_header(&header);
            return Some(Frame {
                header: h,
                body: Vec::new(),
            });
        };
        let mut body = vec![0u8; needed - HEADER_BYTES];
        self.stream.read_exact(&mut body).unwrap();
        Some(Frame {
            header: decoded_header(&header),
            body,
        })
    }

    /// Sends a request and reads its response (the next frame must be it).
    fn call<Req: Serialize>(&mut self, kind: Kind, body: &Req) -> Frame {
        let id = self.send(kind, body);
        let f = self.read().expect("connection closed");
        assert_eq!(f.header.request_id, id);
        assert_eq!(f.header.kind, kind as u8);
        assert!(f.header.is_response());
        f
    }
}

fn decoded_header(h: &[u8; HEADER_BYTES]) -> FrameHeader {
    FrameHeader {
        body_bytes: u32::from_le_bytes([h[0], h[1], h[2], h[3]]),
        version: h[4],
        kind: h[5],
        flags: u16::from_le_bytes([h[6], h[7]]),
        request_id: u32::from_le_bytes([h[8], h[9], h[10], h[11]]),
    }
}

/// Decodes a response body: the payload, or the error code and message.
fn parse<'a, Resp: Deserialize<'a>>(f: &'a Frame) -> Result<Resp, (ErrorCode, String)> {
    match decode_response::<Resp>(&f.body).unwrap() {
        Response::Ok(r) => Ok(r),
        Response::Err { code, message } => Err((code, message.to_owned())),
    }
}

/// A FETCH response's records, owned: (offset, key, value, headers).
type Fetched = Vec<(u64, Option<Vec<u8>>, Vec<u8>, Vec<(String, Vec<u8>)>)>;

fn fetched(f: &Frame) -> Result<(u64, Fetched), (ErrorCode, String)> {
    match decode_response::<FetchResponse<'_>>(&f.body).unwrap() {
        Response::Ok(r) => {
            let records = r
                .records
                .iter()
                .map(|r| {
                    let r: RecordOut<'_> = r.unwrap();
                    let headers = r
                        .headers
                        .iter()
                        .map(|h| {
                            let h: Header<'_> = h.unwrap();
                            (h.name.to_owned(), h.value.to_vec())
                        })
                        .collect();
                    (
                        r.offset,
                        r.key.map(<[u8]>::to_vec),
                        r.value.to_vec(),
                        headers,
                    )
                })
                .collect();
            Ok((r.next, records))
        }
        Response::Err { code, message } => Err((code, message.to_owned())),
    }
}

fn fetch_request(topic: &str, partition: u32, offset: u64, wait_ms_max: u32) -> FetchRequest<'_> {
    FetchRequest {
        topic,
        partition,
        offset,
        bytes_max: 1 << 20,
        wait_ms_max,
    }
}

#[test]
fn produce_fetch_errors_goodbye_sigterm_and_restart() {
    let dir = TempDir::new("smoke");
    let server = Server::start(&dir);
    let mut c = server.connect();

    // HELLO: version 1 and the limits.
    let f = c.call(
        Kind::Hello,
        &HelloRequest {
            version_min: 1,
            version_max: 3,
            client: "smoke",
        },
    );
    let hello: HelloResponse<'_> = parse(&f).unwrap();
    assert!(hello.server.starts_with("outpost "), "{}", hello.server);
    assert_eq!(hello.version, 1);
    assert_eq!(hello.batch_bytes_max, 4096);
    assert_eq!(hello.frame_bytes_max, 4096 + 64 * 1024);
    assert_eq!(hello.inflight_max, 256);

    // CREATE_TOPIC, then again: TOPIC_EXISTS.
    let create = CreateTopicRequest {
        name: "smoke",
        partitions: 2,
    };
    let f = c.call(Kind::CreateTopic, &create);
    let created: CreateTopicResponse<'_> = parse(&f).unwrap();
    assert_eq!((created.name, created.partitions), ("smoke", 2));
    let f = c.call(Kind::CreateTopic, &create);
    let again = parse::<CreateTopicResponse<'_>>(&f).unwrap_err();
    assert_eq!(again.0, ErrorCode::TopicExists);

    // PRODUCE durable to partition 1: offsets 0 and 1.
    let headers = [Header {
        name: "origin",
        value: b"test",
    }];
    let records = [
        RecordIn {
            timestamp_ms: 1_700_000_000_000,
            key: Some(b"k1"),
            value: b"hello",
            headers: Seq::Slice(&headers),
        },
        RecordIn {
            timestamp_ms: 1_700_000_000_001,
            key: None,
            value: b"world",
            headers: Seq::Slice(&[]),
        },
    ];
    let f = c.call(
        Kind::Produce,
        &ProduceRequest {
            topic: "smoke",
            partition: Some(1),
            acks: WireAcks::Durable,
            records: Seq::Slice(&records),
        },
    );
    let produced: ProduceResponse = parse(&f).unwrap();
    assert_eq!(
        produced,
        ProduceResponse {
            partition: 1,
            base_offset: 0,
            count: 2
        }
    );

    // FETCH returns them.
    c.send(Kind::Fetch, &fetch_request("smoke", 1, 0, 0));
    let f = c.read().unwrap();
    let (next, got) = fetched(&f).unwrap();
    assert_eq!(next, 2);
    assert_eq!(
        got,
        vec![
            (
                0,
                Some(b"k1".to_vec()),
                b"hello".to_vec(),
                vec![("origin".to_owned(), b"test".to_vec())]
            ),
            (1, None, b"world".to_vec(), vec![]),
        ]
    );

    // Unknown topic.
    c.send(Kind::Fetch, &fetch_request("nope", 0, 0, 0));
    let (code, message) = fetched(&c.read().unwrap()).unwrap_err();
    assert_eq!(code, ErrorCode::UnknownTopic);
    assert!(message.contains("nope"), "{message}");

    // Pipelining: a long poll at the end of partition 0 does not hold back a PRODUCE sent
    // after it on the same connection, and the PRODUCE wakes it with the record.
    let fetch_id = c.send(Kind::Fetch, &fetch_request("smoke", 0, 0, 10_000));
    let started = Instant::now();
    let one = [RecordIn {
        timestamp_ms: 7,
        key: None,
        value: b"woken",
        headers: Seq::Slice(&[]),
    }];
    let produce_id = c.send(
        Kind::Produce,
        &ProduceRequest {
            topic: "smoke",
            partition: Some(0),
            acks: WireAcks::Durable,
            records: Seq::Slice(&one),
        },
    );
    // Both are answered, by id, in whichever order they complete (the sync that acks the
    // PRODUCE is also what wakes the FETCH).
    let (a, b) = (c.read().unwrap(), c.read().unwrap());
    let (produced, woken) = if a.header.request_id == produce_id {
        (a, b)
    } else {
        (b, a)
    };
    assert_eq!(produced.header.request_id, produce_id);
    assert_eq!(woken.header.request_id, fetch_id);
    let r: ProduceResponse = parse(&produced).unwrap();
    assert_eq!((r.partition, r.base_offset, r.count), (0, 0, 1));
    let (_, got) = fetched(&woken).unwrap();
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].2, b"woken");
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "the long poll was not woken"
    );

    // An unknown kind is answered and the connection stays open.
    let id = c.send_raw_kind(0x7f);
    let f = c.read().unwrap();
    assert_eq!(f.header.request_id, id);
    assert_eq!(parse::<Empty>(&f).unwrap_err().0, ErrorCode::UnknownKind);

    // A frame with a bad header CRC: GOODBYE HEADER_CRC (request id 0), then the close. The
    // first connection is not affected.
    let mut bad = server.connect();
    let mut frame = vec![0u8; 64];
    let n = encode_request(&mut frame, Kind::ListTopics as u8, 9, &Empty {}).unwrap();
    frame[12] ^= 0xff;
    bad.stream.write_all(&frame[..n]).unwrap();
    let goodbye = bad.read().expect("no GOODBYE");
    assert_eq!(goodbye.header.kind, Kind::Goodbye as u8);
    assert_eq!(goodbye.header.request_id, 0);
    assert_eq!(
        parse::<Empty>(&goodbye).unwrap_err().0,
        ErrorCode::HeaderCrc
    );
    assert!(
        bad.read().is_none(),
        "the connection stays open after GOODBYE"
    );
    let f = c.call(Kind::ListTopics, &Empty {});
    let topics: ListTopicsResponse<'_> = parse(&f).unwrap();
    assert_eq!(topics.topics.len(), 1);
    drop(c);

    // SIGTERM: exit 0 after a clean stop.
    let (code, stderr) = server.terminate();
    assert_eq!(code, 0, "{}", stderr.join("\n"));
    assert!(
        stderr.iter().any(|l| l.contains("stopped cleanly")),
        "{}",
        stderr.join("\n")
    );

    // Restart on the same data: the topic and the records are still there.
    let server = Server::start(&dir);
    let mut c = server.connect();
    let f = c.call(Kind::ListTopics, &Empty {});
    let list: ListTopicsResponse<'_> = parse(&f).unwrap();
    let names: Vec<(String, u32)> = list
        .topics
        .iter()
        .map(|t| {
            let t: TopicInfo<'_> = t.unwrap();
            (t.name.to_owned(), t.partitions)
        })
        .collect();
    assert_eq!(names, [("smoke".to_owned(), 2)]);
    c.send(Kind::Fetch, &fetch_request("smoke", 1, 0, 0));
    let (next, got) = fetched(&c.read().unwrap()).unwrap();
    assert_eq!((next, got.len()), (2, 2));
    let (code, _) = server.terminate();
    assert_eq!(code, 0);
}

impl Client {
    /// Sends an empty-bodied request of a raw kind number.
    fn send_raw_kind(&mut self, kind: u8) -> u32 {
        let id = self.next_id;
        self.next_id += 1;
        let mut buf = [0u8; HEADER_BYTES];
        let n = encode_request(&mut buf, kind, id, &Empty {}).unwrap();
        self.stream.write_all(&buf[..n]).unwrap();
        id
    }
}

/// The broker in this process on a simulated flash, with `cfg`'s limits: the API tests and the
/// bench can use. Stopped (and its log closed) on drop.
struct InProcess {
    addr: SocketAddr,
    broker: Arc<Broker<SimFlash>>,
    stop: Option<smol::channel::Sender<()>>,
    thread: Option<std::thread::JoinHandle<std::io::Result<()>>>,
}

impl InProcess {
    fn start(edit: impl FnOnce(&mut BrokerConfig)) -> InProcess {
        let ring = RingConfig {
            erase_block_bytes: 4096,
            program_unit_bytes: 512,
            ring_bytes: 16 * 65536,
            segment_bytes: 65536,
            full_policy: FullPolicy::Reject,
            corruption_policy: CorruptionPolicy::Refuse,
            group_bytes_max: 16384,
            batch_bytes_max: 4096,
            meta_bytes_max: 1024,
            partitions_max: 16,
            index_interval_bytes: 4096,
            read_chunk_bytes: 8192,
            append_queue_max: 64,
            producers_max: 64,
        };
        let mut cfg = BrokerConfig::defaults_for(&ring);
        edit(&mut cfg);
        cfg.validate(&ring).unwrap();
        let g = Geometry::new(
            ring.erase_block_bytes,
            ring.program_unit_bytes,
            ring.ring_bytes,
        )
        .unwrap();
        let (ring, _) = Ring::open(SimFlash::new(g), ring).unwrap();
        let broker = Broker::start(ring, cfg).unwrap();
        let listener = smol::block_on(smol::net::TcpListener::bind("127.0.0.1:0")).unwrap();
        let addr = listener.local_addr().unwrap();
        let (stop, stopped) = smol::channel::bounded::<()>(1);
        let b = broker.clone();
        let thread = std::thread::spawn(move || {
            smol::block_on(server::run(listener, b, async move {
                let _ = stopped.recv().await;
            }))
        });
        InProcess {
            addr,
            broker,
            stop: Some(stop),
            thread: Some(thread),
        }
    }

    fn connect(&self) -> Client {
        let stream = TcpStream::connect(self.addr).unwrap();
        stream.set_read_timeout(Some(WAIT)).unwrap();
        Client { stream, next_id: 1 }
    }
}

impl Drop for InProcess {
    fn drop(&mut self) {
        drop(self.stop.take());
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
        self.broker.close();
    }
}

#[test]
fn limits_connections_frames_acks_none_and_idle() {
    let b = InProcess::start(|c| {
        c.connections_max = 2;
        // Long enough for the steps below on a loaded 2-core machine (connection `c` stays
        // idle while they run on others; 300 ms once risked closing it early).
        c.idle_timeout_ms = 2_000;
    });
    let mut c = b.connect();
    let f = c.call(
        Kind::CreateTopic,
        &CreateTopicRequest {
            name: "t",
            partitions: 1,
        },
    );
    parse::<CreateTopicResponse<'_>>(&f).unwrap();

    // acks=none: no response at all, not even for an unknown topic; the next request's
    // response is the next frame.
    let one = [RecordIn {
        timestamp_ms: 1,
        key: None,
        value: b"quiet",
        headers: Seq::Slice(&[]),
    }];
    for topic in ["t", "missing"] {
        c.send(
            Kind::Produce,
            &ProduceRequest {
                topic,
                partition: None,
                acks: WireAcks::None,
                records: Seq::Slice(&one),
            },
        );
    }
    let f = c.call(Kind::Fetch, &fetch_request("t", 0, 0, 2_000));
    let (_, got) = fetched(&f).unwrap();
    assert_eq!(got[0].2, b"quiet");

    // A third connection is over connections_max: GOODBYE TOO_MANY_CONNECTIONS, then close.
    let mut second = b.connect();
    let f = second.call(Kind::ListTopics, &Empty {});
    parse::<ListTopicsResponse<'_>>(&f).unwrap();
    let mut third = b.connect();
    let goodbye = third.read().expect("no GOODBYE");
    assert_eq!(goodbye.header.kind, Kind::Goodbye as u8);
    assert_eq!(
        parse::<Empty>(&goodbye).unwrap_err().0,
        ErrorCode::TooManyConnections
    );
    assert!(third.read().is_none());
    drop(second);
    let deadline = Instant::now() + WAIT;
    while b.broker.connections() > 1 {
        assert!(
            Instant::now() < deadline,
            "the closed connection is still counted"
        );
        std::thread::sleep(Duration::from_millis(5));
    }

    // A frame announcing more than frame_bytes_max: GOODBYE FRAME_TOO_LARGE with its id.
    let limit = b.broker.config().frame_bytes_max;
    let mut big = b.connect();
    let header = FrameHeader::request(Kind::Produce as u8, 77, limit).encode();
    big.stream.write_all(&header).unwrap();
    let goodbye = big.read().expect("no GOODBYE");
    assert_eq!(goodbye.header.request_id, 77);
    let (code, message) = parse::<Empty>(&goodbye).unwrap_err();
    assert_eq!(code, ErrorCode::FrameTooLarge);
    assert!(message.contains("frame_bytes_max"), "{message}");
    assert!(big.read().is_none());

    // An unsupported version is answered; the connection stays open.
    let mut frame = vec![0u8; 64];
    let n = encode_request(&mut frame, Kind::ListTopics as u8, 5, &Empty {}).unwrap();
    let mut h = FrameHeader::request(Kind::ListTopics as u8, 5, (n - HEADER_BYTES) as u32);
    h.version = 2;
    frame[..HEADER_BYTES].copy_from_slice(&h.encode());
    c.stream.write_all(&frame[..n]).unwrap();
    let f = c.read().unwrap();
    assert_eq!(
        parse::<Empty>(&f).unwrap_err().0,
        ErrorCode::UnsupportedVersion
    );

    // Idle for longer than idle_timeout_ms: closed.
    let started = Instant::now();
    assert!(c.read().is_none());
    assert!(started.elapsed() >= Duration::from_millis(1_000));
}

#[test]
fn requests_beyond_inflight_max_already_buffered_are_refused() {
    let b = InProcess::start(|c| c.inflight_max = 2);
    let mut c = b.connect();
    let f = c.call(
        Kind::CreateTopic,
        &CreateTopicRequest {
            name: "t",
            partitions: 1,
        },
    );
    parse::<CreateTopicResponse<'_>>(&f).unwrap();
    // Five long polls in one write: two are served (they wait), three are refused at once.
    let mut bytes = Vec::new();
    for id in 100..105u32 {
        let mut buf = [0u8; 64];
        let n = encode_request(
            &mut buf,
            Kind::Fetch as u8,
            id,
            &fetch_request("t", 0, 0, 300),
        )
        .unwrap();
        bytes.extend_from_slice(&buf[..n]);
    }
    c.stream.write_all(&bytes).unwrap();
    let mut refused = Vec::new();
    let mut served = Vec::new();
    for _ in 0..5 {
        let f = c.read().unwrap();
        match fetched(&f) {
            Ok((_, records)) => {
                assert!(records.is_empty());
                served.push(f.header.request_id);
            }
            Err((code, _)) => {
                assert_eq!(code, ErrorCode::TooManyInFlight);
                refused.push(f.header.request_id);
            }
        }
    }
    // Answers come in any order (pipelining); which ones is what matters.
    refused.sort();
    assert_eq!(refused, [102, 103, 104]);
    served.sort();
    assert_eq!(served, [100, 101]);
}
