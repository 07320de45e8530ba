//! Bad input against the real `outpost serve` (127.0.0.1 port 0, a 1 MiB ring, batches of at
//! most 4 KiB, `connections_max = 4`): random bytes (seeded), a frame longer than
//! `frame_bytes_max`, a bad header CRC, reserved flag bits, an unknown version, an unknown
//! kind, an unknown topic, an oversize batch, one connection too many.
//!
//! Each gets the error or the close docs/PROTOCOL.md section 5 documents. Meanwhile a second,
//! well-behaved client keeps its one connection and keeps being served, and the stored data is
//! byte-identical before and after each bad input: every record (fetched) and every byte of
//! the ring file `DATA/ring.dat` (the broker writes it only to append, so a refused request
//! must leave it untouched). After each check the good client produces and fetches a record,
//! and that becomes the new "before".

mod support;

use std::time::{Duration, Instant};

use outpost::client::{Client, ClientError};
use outpost::protocol::frame::FrameHeader;
use outpost::protocol::messages::{
    CreateTopicRequest, DescribeTopicRequest, Empty, FetchRequest, HelloRequest,
    ListOffsetsRequest, ListTopicsResponse, ProduceRequest, RecordIn, WireAcks,
};
use outpost::protocol::{ErrorCode, HEADER_BYTES, Kind, Seq};
use outpost::storage::{Acks, Record};
use support::{Raw, Rng, Server, TempDir, fetch_all, raw_frame, record, request_frame};

const TOPIC: &str = "data";
const PARTITIONS: u32 = 2;
const CONNECTIONS_MAX: u32 = 4;
/// The board's `batch_bytes_max`.
const BATCH_BYTES_MAX: usize = 4096;
/// The default `frame_bytes_max`: `batch_bytes_max` + 64 KiB.
const FRAME_BYTES_MAX: u32 = 4096 + 64 * 1024;

/// What is stored: every record of every topic (fetched) and the ring file's bytes.
#[derive(PartialEq, Eq)]
struct Snapshot {
    records: Vec<(String, u32, u64, Record)>,
    ring: Vec<u8>,
}

/// Fields drop in order: the client, the broker, then its directory.
struct Fixture {
    /// The well-behaved client: one connection for the whole test.
    good: Client,
    server: Server,
    dir: TempDir,
    /// Records the good client appended after the initial ones, in order.
    good_appends: u64,
}

impl Fixture {
    fn snapshot(&self) -> Snapshot {
        let records = smol::block_on(async {
            let mut out = Vec::new();
            for topic in self.good.list_topics().await.unwrap() {
                let described = self.good.describe_topic(&topic.name).await.unwrap();
                for p in described.partitions {
                    for r in fetch_all(&self.good, &topic.name, p.partition, p.earliest).await {
                        out.push((topic.name.clone(), p.partition, r.offset, r.record));
                    }
                }
            }
            out
        });
        let ring = std::fs::read(self.dir.ring_file()).unwrap();
        Snapshot { records, ring }
    }

    /// A read-only request from the good client: it is still served.
    fn good_is_served(&self, during: &str) {
        let topics = smol::block_on(self.good.list_topics())
            .unwrap_or_else(|e| panic!("{during}: the good client is not served: {e}"));
        assert!(topics.iter().any(|t| t.name == TOPIC), "{during}");
    }

    /// After a bad input: the good client is served, the store is unchanged, then the good
    /// client appends a record and fetches it back. Returns the new snapshot.
    fn after(&mut self, bad: &str, before: Snapshot) -> Snapshot {
        self.good_is_served(bad);
        let after = self.snapshot();
        assert_eq!(
            after.records.len(),
            before.records.len(),
            "{bad}: the number of stored records changed"
        );
        for (a, b) in after.records.iter().zip(&before.records) {
            assert_eq!(a, b, "{bad}: a stored record changed");
        }
        assert_eq!(after.ring.len(), before.ring.len(), "{bad}: ring file size");
        if let Some(at) = (0..after.ring.len()).find(|&i| after.ring[i] != before.ring[i]) {
            panic!("{bad}: the ring file changed, first at byte {at}");
        }

        let value = format!("good after {bad}");
        let p = (self.good_appends % u64::from(PARTITIONS)) as u32;
        smol::block_on(async {
            let at = self
                .good
                .produce(
                    TOPIC,
                    Some(p),
                    Acks::Durable,
                    &[record(Some(b"good"), value.as_bytes())],
                )
                .await
                .unwrap_or_else(|e| panic!("{bad}: the good client's produce failed: {e}"))
                .unwrap();
            let f = self
                .good
                .fetch(TOPIC, p, at.base_offset, 1 << 20, 0)
                .await
                .unwrap();
            assert_eq!(f.records[0].offset, at.base_offset);
            assert_eq!(f.records[0].record.value, value.as_bytes(), "{bad}");
        });
        self.good_appends += 1;
        self.snapshot()
    }

    fn raw(&self) -> Raw {
        self.server.raw()
    }

    /// Waits until the broker counts `n` connections (closed ones are counted down when
    /// their task ends).
    fn wait_connections(&self, n: u32) {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let status = smol::block_on(self.good.status()).unwrap();
            if status.connections == n {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "the broker still counts {} connections, not {n}",
                status.connections
            );
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

fn produce_body<'a>(topic: &'a str, acks: WireAcks, records: &'a [RecordIn<'a>]) -> Vec<u8> {
    let request = ProduceRequest {
        topic,
        partition: Some(0),
        acks,
        records: Seq::Slice(records),
    };
    postcard::to_extend(&request, Vec::new()).unwrap()
}

/// A PRODUCE frame that would append one record if it were accepted.
fn appending_frame(id: u32) -> Vec<u8> {
    let one = [RecordIn {
        timestamp_ms: 1,
        key: None,
        value: b"must not be stored",
        headers: Seq::Slice(&[]),
    }];
    let body = produce_body(TOPIC, WireAcks::Durable, &one);
    raw_frame(
        FrameHeader::request(Kind::Produce as u8, id, body.len() as u32),
        &body,
    )
}

/// The end of partition `p` of the topic in a snapshot.
fn before_next(s: &Snapshot, p: u32) -> u64 {
    s.records
        .iter()
        .filter(|r| r.0 == TOPIC && r.1 == p)
        .map(|r| r.2 + 1)
        .max()
        .unwrap_or(0)
}

/// A LIST_TOPICS on `raw` is answered OK: the connection is still open and served.
fn still_open(raw: &mut Raw, id: u32) {
    let f = raw.call(Kind::ListTopics as u8, id, &Empty {});
    let topics: ListTopicsResponse<'_> = f.ok();
    assert_eq!(topics.topics.len(), 1);
}

#[test]
fn bad_input_gets_its_documented_answer_and_changes_nothing() {
    let dir = TempDir::new("bad-input");
    let board = dir.board("64 KiB", "1 MiB", "16 KiB", "4 KiB");
    let config = dir.config(&[
        &format!("connections_max = {CONNECTIONS_MAX}"),
        "fetch_wait_ms_max = 2000",
    ]);
    let server = Server::start(&board, &dir.data(), Some(&config));
    let good = server.client();
    assert_eq!(good.server_info().frame_bytes_max, FRAME_BYTES_MAX);
    assert_eq!(good.server_info().batch_bytes_max as usize, BATCH_BYTES_MAX);
    let mut fx = Fixture {
        dir,
        server,
        good,
        good_appends: 0,
    };

    // Some records first, on both partitions, keyed and not, with headers.
    smol::block_on(async {
        fx.good.create_topic(TOPIC, PARTITIONS).await.unwrap();
        for i in 0..40u32 {
            let r = Record {
                timestamp_ms: 1_700_000_000_000 + i64::from(i),
                key: (i % 3 == 0).then(|| format!("key-{i}").into_bytes()),
                value: format!("initial-{i}").into_bytes(),
                headers: vec![("n".into(), i.to_le_bytes().to_vec())],
            };
            fx.good
                .produce(TOPIC, Some(i % PARTITIONS), Acks::Durable, &[r])
                .await
                .unwrap();
        }
    });
    let mut before = fx.snapshot();
    assert_eq!(before.records.len(), 40);
    let started = Instant::now();

    // 1. Random bytes (seeded). At least 16 of them: the "header" fails its CRC, so GOODBYE
    //    HEADER_CRC with request id 0, then the close.
    let mut rng = Rng::new(0x0b5e_55ed_5eed_0001);
    for i in 0..8 {
        let len = if i == 0 {
            16
        } else {
            rng.range(17, 8192) as usize
        };
        let bytes = rng.bytes(len);
        let mut raw = fx.raw();
        // The broker may close before it read everything: a failed write is fine.
        let _ = raw.write(&bytes);
        fx.good_is_served("random bytes");
        raw.expect_goodbye(ErrorCode::HeaderCrc, 0);
    }
    before = fx.after("random bytes", before);

    // Fewer than 16 random bytes, then the end of stream: an incomplete frame is not an
    // error; the broker just closes when the peer does, sending nothing.
    let mut raw = fx.raw();
    raw.write(&rng.bytes(7)).unwrap();
    fx.good_is_served("an incomplete frame");
    raw.shutdown_write();
    raw.expect_closed();
    before = fx.after("an incomplete frame", before);

    // Well-delimited frames with random bodies: each answered by id with an error (or, for
    // a request that reads, possibly OK), and the connection stays open. A PRODUCE whose
    // records are random bytes is BAD_BODY.
    let mut raw = fx.raw();
    let read_only = [
        Kind::Hello,
        Kind::ListTopics,
        Kind::DescribeTopic,
        Kind::Fetch,
        Kind::ListOffsets,
        Kind::Status,
        Kind::ForwarderStatus,
        // Consumer-group requests that store nothing (a random body rarely decodes; when it
        // does, the group or member is unknown).
        Kind::SyncGroup,
        Kind::Heartbeat,
        Kind::LeaveGroup,
        Kind::FetchOffsets,
        Kind::ListGroups,
        Kind::DescribeGroup,
    ];
    let mut id = 1000;
    for round in 0..20 {
        for kind in read_only {
            id += 1;
            let len = rng.range(1, 64) as usize;
            let body = rng.bytes(len);
            let h = FrameHeader::request(kind as u8, id, body.len() as u32);
            raw.write(&raw_frame(h, &body)).unwrap();
            let f = raw.response(kind as u8, id);
            let code = f.code();
            assert!(
                matches!(
                    code,
                    ErrorCode::Ok
                        | ErrorCode::BadBody
                        | ErrorCode::UnknownTopic
                        | ErrorCode::UnknownPartition
                        | ErrorCode::UnsupportedVersion
                        | ErrorCode::InvalidGroupId
                        | ErrorCode::UnknownMemberId
                ),
                "round {round}: {} with a random body answered {code}: {}",
                kind.name(),
                f.message()
            );
        }
        // PRODUCE: a valid topic, partition and acks, then random "records".
        id += 1;
        let mut body = postcard::to_extend(&(TOPIC, Some(0u32), 2u8), Vec::new()).unwrap();
        let len = rng.range(1, 200) as usize;
        body.extend(rng.bytes(len));
        let h = FrameHeader::request(Kind::Produce as u8, id, body.len() as u32);
        raw.write(&raw_frame(h, &body)).unwrap();
        let f = raw.response(Kind::Produce as u8, id);
        assert_eq!(
            f.code(),
            ErrorCode::BadBody,
            "round {round}: {}",
            f.message()
        );
    }
    still_open(&mut raw, 1);
    drop(raw);
    before = fx.after("random bodies", before);

    // 2. A frame whose length exceeds frame_bytes_max: GOODBYE FRAME_TOO_LARGE carrying the
    //    frame's id (its header is intact), then the close. Nothing is read for the body.
    for (id, body_bytes) in [
        (77, FRAME_BYTES_MAX - HEADER_BYTES as u32 + 1),
        (78, u32::MAX),
    ] {
        let mut raw = fx.raw();
        let h = FrameHeader::request(Kind::Produce as u8, id, body_bytes);
        raw.write(&h.encode()).unwrap();
        // Some of the body follows; the broker must not wait for the rest.
        let _ = raw.write(&[0xAB; 1024]);
        fx.good_is_served("a frame too large");
        let message = raw.expect_goodbye(ErrorCode::FrameTooLarge, id);
        assert!(message.contains("frame_bytes_max"), "{message}");
    }
    // The largest frame allowed is not refused as too large (a PRODUCE body that large fails
    // to decode instead: BAD_BODY, connection open).
    let mut raw = fx.raw();
    let body = vec![0u8; FRAME_BYTES_MAX as usize - HEADER_BYTES];
    let h = FrameHeader::request(Kind::Produce as u8, 79, body.len() as u32);
    raw.write(&raw_frame(h, &body)).unwrap();
    let f = raw.response(Kind::Produce as u8, 79);
    assert_eq!(f.code(), ErrorCode::BadBody, "{}", f.message());
    still_open(&mut raw, 80);
    drop(raw);
    before = fx.after("a frame too large", before);

    // 3. A bad header CRC on a PRODUCE that would append: GOODBYE HEADER_CRC with id 0 (the
    //    header cannot be trusted), then the close; nothing appended. Also a flipped length
    //    bit (the CRC catches it).
    for flip in [12usize, 0, 5, 9] {
        let mut frame = appending_frame(90);
        frame[flip] ^= 0x01;
        let mut raw = fx.raw();
        let _ = raw.write(&frame);
        fx.good_is_served("a bad header CRC");
        raw.expect_goodbye(ErrorCode::HeaderCrc, 0);
    }
    // A broken frame behind a long poll in flight on the same connection: the GOODBYE does
    // not wait for the poll (whose answer is dropped), and the close follows.
    let mut raw = fx.raw();
    let mut bytes = request_frame(
        Kind::Fetch as u8,
        92,
        &FetchRequest {
            topic: TOPIC,
            partition: 0,
            offset: before_next(&before, 0),
            bytes_max: 1024,
            wait_ms_max: 2000,
        },
    );
    let mut broken = appending_frame(93);
    broken[12] ^= 0x80;
    bytes.extend(broken);
    let sent = Instant::now();
    let _ = raw.write(&bytes);
    raw.expect_goodbye(ErrorCode::HeaderCrc, 0);
    assert!(
        sent.elapsed() < Duration::from_millis(1500),
        "the GOODBYE waited {:?} behind a long poll",
        sent.elapsed()
    );
    before = fx.after("a bad header CRC", before);

    // Reserved flag bits (a correct CRC): GOODBYE MALFORMED with the frame's id, close.
    let mut frame = appending_frame(91);
    let mut h = support::parse_header(frame[..HEADER_BYTES].try_into().unwrap());
    h.flags = 0x0002;
    frame[..HEADER_BYTES].copy_from_slice(&h.encode());
    let mut raw = fx.raw();
    let _ = raw.write(&frame);
    raw.expect_goodbye(ErrorCode::Malformed, 91);
    // The RESPONSE flag alone is not reserved: a client frame carrying it is served like a
    // request.
    let mut raw = fx.raw();
    let mut frame = request_frame(Kind::ListTopics as u8, 94, &Empty {});
    let mut h = support::parse_header(frame[..HEADER_BYTES].try_into().unwrap());
    h.flags = 0x0001;
    frame[..HEADER_BYTES].copy_from_slice(&h.encode());
    raw.write(&frame).unwrap();
    let f = raw.response(Kind::ListTopics as u8, 94);
    assert_eq!(f.code(), ErrorCode::Ok, "{}", f.message());
    drop(raw);
    before = fx.after("reserved flag bits", before);

    // 4. An unknown version on a PRODUCE that would append: UNSUPPORTED_VERSION with the
    //    frame's id and kind; the connection stays open; nothing appended.
    let mut raw = fx.raw();
    for (id, version) in [(100u32, 2u8), (101, 0), (102, 255)] {
        let mut frame = appending_frame(id);
        let mut h = support::parse_header(frame[..HEADER_BYTES].try_into().unwrap());
        h.version = version;
        frame[..HEADER_BYTES].copy_from_slice(&h.encode());
        raw.write(&frame).unwrap();
        let f = raw.response(Kind::Produce as u8, id);
        assert_eq!(f.code(), ErrorCode::UnsupportedVersion, "{}", f.message());
    }
    // HELLO offering only versions this broker does not speak.
    let f = raw.call(
        Kind::Hello as u8,
        103,
        &HelloRequest {
            version_min: 2,
            version_max: 9,
            client: "from the future",
        },
    );
    assert_eq!(f.code(), ErrorCode::UnsupportedVersion, "{}", f.message());
    fx.good_is_served("an unknown version");
    still_open(&mut raw, 104);
    drop(raw);
    before = fx.after("an unknown version", before);

    // 5. An unknown kind (never assigned, reserved for later layers, or GOODBYE sent by a
    //    client) with a PRODUCE body: UNKNOWN_KIND with the id and kind; connection open.
    let mut raw = fx.raw();
    for (i, kind) in [
        0x09u8, 0x0f, 0x12, 0x28, 0x2f, 0x31, 0x41, 0x4f, 0x7f, 0xff, 0x00,
    ]
    .into_iter()
    .enumerate()
    {
        let id = 200 + i as u32;
        let mut frame = appending_frame(id);
        let mut h = support::parse_header(frame[..HEADER_BYTES].try_into().unwrap());
        h.kind = kind;
        frame[..HEADER_BYTES].copy_from_slice(&h.encode());
        raw.write(&frame).unwrap();
        let f = raw.response(kind, id);
        assert_eq!(f.code(), ErrorCode::UnknownKind, "kind {kind:#04x}");
    }
    still_open(&mut raw, 299);
    drop(raw);
    before = fx.after("an unknown kind", before);

    // 6. An unknown topic: every request naming it is refused UNKNOWN_TOPIC, connection open;
    //    a PRODUCE with acks = none gets no answer at all (the next request's answer is the
    //    next frame).
    let mut raw = fx.raw();
    let one = [RecordIn {
        timestamp_ms: 1,
        key: Some(b"k"),
        value: b"to nowhere",
        headers: Seq::Slice(&[]),
    }];
    for (id, acks) in [(300u32, WireAcks::Durable), (301, WireAcks::Written)] {
        let f = raw.call(
            Kind::Produce as u8,
            id,
            &ProduceRequest {
                topic: "nope",
                partition: None,
                acks,
                records: Seq::Slice(&one),
            },
        );
        assert_eq!(f.code(), ErrorCode::UnknownTopic);
        assert!(f.message().contains("nope"), "{}", f.message());
    }
    raw.send(
        Kind::Produce as u8,
        302,
        &ProduceRequest {
            topic: "nope",
            partition: None,
            acks: WireAcks::None,
            records: Seq::Slice(&one),
        },
    );
    let f = raw.call(
        Kind::Fetch as u8,
        303,
        &FetchRequest {
            topic: "nope",
            partition: 0,
            offset: 0,
            bytes_max: 1024,
            wait_ms_max: 1000,
        },
    );
    assert_eq!(f.code(), ErrorCode::UnknownTopic);
    let f = raw.call(
        Kind::ListOffsets as u8,
        304,
        &ListOffsetsRequest {
            topic: "nope",
            partition: 0,
        },
    );
    assert_eq!(f.code(), ErrorCode::UnknownTopic);
    let f = raw.call(
        Kind::DescribeTopic as u8,
        305,
        &DescribeTopicRequest { name: "nope" },
    );
    assert_eq!(f.code(), ErrorCode::UnknownTopic);
    // A topic name that breaks the rules is not created (and changes nothing).
    let f = raw.call(
        Kind::CreateTopic as u8,
        306,
        &CreateTopicRequest {
            name: "no/slashes",
            partitions: 1,
        },
    );
    assert_eq!(f.code(), ErrorCode::InvalidTopicName);
    still_open(&mut raw, 307);
    drop(raw);
    let e = smol::block_on(
        fx.good
            .produce("nope", None, Acks::Durable, &[record(None, b"x")]),
    )
    .unwrap_err();
    assert_eq!(e.code(), Some(ErrorCode::UnknownTopic), "{e}");
    assert!(e.connection_usable());
    before = fx.after("an unknown topic", before);

    // 7. An oversize batch: BATCH_TOO_LARGE, connection open, nothing appended. One record
    //    making the batch one byte over batch_bytes_max (a 40-byte batch header plus the
    //    record's 22 + value bytes), and many small records summing over it; with acks = none
    //    no answer, and nothing stored either.
    let big = vec![b'x'; BATCH_BYTES_MAX - 40 - 22 + 1];
    let one_big = [RecordIn {
        timestamp_ms: 1,
        key: None,
        value: &big,
        headers: Seq::Slice(&[]),
    }];
    let small_value = [b'y'; 60];
    let many_small: Vec<RecordIn<'_>> = (0..60)
        .map(|_| RecordIn {
            timestamp_ms: 2,
            key: None,
            value: &small_value,
            headers: Seq::Slice(&[]),
        })
        .collect();
    let mut raw = fx.raw();
    raw.send(
        Kind::Produce as u8,
        400,
        &ProduceRequest {
            topic: TOPIC,
            partition: None,
            acks: WireAcks::None,
            records: Seq::Slice(&one_big),
        },
    );
    for (id, records) in [(401u32, &one_big[..]), (402, &many_small[..])] {
        let f = raw.call(
            Kind::Produce as u8,
            id,
            &ProduceRequest {
                topic: TOPIC,
                partition: Some(1),
                acks: WireAcks::Durable,
                records: Seq::Slice(records),
            },
        );
        assert_eq!(f.code(), ErrorCode::BatchTooLarge, "{}", f.message());
        assert!(f.message().contains("batch_bytes_max"), "{}", f.message());
    }
    still_open(&mut raw, 403);
    drop(raw);
    // Through the client library: the same refusal, and the connection stays usable.
    let e = smol::block_on(
        fx.good
            .produce(TOPIC, Some(0), Acks::Durable, &[record(None, &big)]),
    )
    .unwrap_err();
    assert_eq!(e.code(), Some(ErrorCode::BatchTooLarge), "{e}");
    assert!(e.connection_usable());
    before = fx.after("an oversize batch", before);

    // 8. Too many connections: with the good client and three more admitted, a fifth gets
    //    GOODBYE TOO_MANY_CONNECTIONS (request id 0) and the close; the four are still
    //    served; once one closes, a new connection is admitted again.
    fx.wait_connections(1);
    let mut admitted: Vec<Raw> = (0..CONNECTIONS_MAX - 1).map(|_| fx.raw()).collect();
    for (i, raw) in admitted.iter_mut().enumerate() {
        still_open(raw, 500 + i as u32);
    }
    fx.wait_connections(CONNECTIONS_MAX);
    let mut refused = fx.raw();
    let message = refused.expect_goodbye(ErrorCode::TooManyConnections, 0);
    assert!(message.contains("connections_max"), "{message}");
    // A request sent on a refused connection is never served (nothing appended).
    let mut refused = fx.raw();
    let _ = refused.write(&appending_frame(510));
    refused.expect_goodbye(ErrorCode::TooManyConnections, 0);
    match smol::block_on(Client::connect(fx.server.addr_string())) {
        Err(ClientError::Goodbye { code, .. }) => assert_eq!(code, ErrorCode::TooManyConnections),
        Err(e) => panic!("a client over connections_max: {e}"),
        Ok(_) => panic!("a client over connections_max was admitted"),
    }
    fx.good_is_served("too many connections");
    for (i, raw) in admitted.iter_mut().enumerate() {
        still_open(raw, 520 + i as u32);
    }
    drop(admitted.pop());
    fx.wait_connections(CONNECTIONS_MAX - 1);
    let mut again = fx.raw();
    still_open(&mut again, 530);
    drop(again);
    drop(admitted);
    before = fx.after("too many connections", before);

    // Everything stored is the initial records plus one per good append, and it survives a
    // clean restart unchanged.
    assert_eq!(before.records.len() as u64, 40 + fx.good_appends);
    eprintln!(
        "bad input: {} checks in {:?}; ring file {} bytes identical across each",
        fx.good_appends,
        started.elapsed(),
        before.ring.len()
    );
    let Fixture {
        dir, server, good, ..
    } = fx;
    drop(good);
    assert_eq!(server.terminate(), 0);
    let server = Server::start(&board, &dir.data(), Some(&config));
    let good = server.client();
    let fx = Fixture {
        dir,
        server,
        good,
        good_appends: 0,
    };
    assert!(
        fx.snapshot().records == before.records,
        "the records changed across a restart"
    );
    let Fixture { server, good, .. } = fx;
    drop(good);
    assert_eq!(server.terminate(), 0);
}
