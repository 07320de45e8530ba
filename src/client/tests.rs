//! The client against a scripted broker on 127.0.0.1 port 0: pipelining answered out of
//! order, the in-flight limit, GOODBYE and connection loss failing pending requests, local
//! size refusal, and the bodies of PRODUCE and FETCH both ways.

use std::future::Future;
use std::net::SocketAddr;
use std::time::Duration;

use serde::Serialize;
use smol::io::AsyncWriteExt;
use smol::net::{TcpListener, TcpStream};

use super::conn::FrameReader;
use super::*;
use crate::protocol::ErrorCode;
use crate::protocol::body::{decode_request, encode_error, encode_ok};
use crate::protocol::frame::FrameHeader;
use crate::protocol::messages::{
    ForwardPartition as WireForwardPartition, PartitionStatus as WirePartitionStatus, RecordOut,
};
use crate::protocol::messages::{Header, RecordIn};

const FRAME_BYTES_MAX: u32 = 64 * 1024;

/// One accepted connection of the scripted broker.
struct Mock {
    stream: TcpStream,
    reader: FrameReader,
}

impl Mock {
    /// The next request frame, or `None` when the client closed.
    async fn next(&mut self) -> Option<(FrameHeader, Vec<u8>)> {
        self.reader.read_frame(&mut self.stream).await.ok()
    }

    /// The next request frame, unless none comes within `ms`.
    async fn next_within(&mut self, ms: u64) -> Option<(FrameHeader, Vec<u8>)> {
        smol::future::or(self.next(), async {
            Timer::after(Duration::from_millis(ms)).await;
            None
        })
        .await
    }

    async fn ok<T: Serialize>(&mut self, kind: Kind, id: u32, body: &T) {
        let mut buf = vec![0; FRAME_BYTES_MAX as usize];
        let n = encode_ok(&mut buf, kind as u8, id, body).unwrap();
        self.stream.write_all(&buf[..n]).await.unwrap();
    }

    async fn err(&mut self, kind: Kind, id: u32, code: ErrorCode, message: &str) {
        let mut buf = vec![0; 1024];
        let n = encode_error(&mut buf, kind as u8, id, code, message).unwrap();
        self.stream.write_all(&buf[..n]).await.unwrap();
    }
}

/// Starts a broker that answers HELLO with these limits, then runs `script` on the
/// connection. Returns its address.
async fn mock<F, Fut>(inflight_max: u32, script: F) -> SocketAddr
where
    F: FnOnce(Mock) -> Fut + Send + 'static,
    Fut: Future<Output = ()> + Send + 'static,
{
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    smol::spawn(async move {
        let (stream, _) = listener.accept().await.unwrap();
        let mut m = Mock {
            stream,
            reader: FrameReader::new(FRAME_BYTES_MAX),
        };
        let (h, body) = m.next().await.unwrap();
        assert_eq!(h.kind, Kind::Hello as u8);
        let hello: HelloRequest<'_> = decode_request(&body).unwrap();
        assert_eq!((hello.version_min, hello.version_max), (1, 1));
        m.ok(
            Kind::Hello,
            h.request_id,
            &HelloResponse {
                version: 1,
                server: "mock",
                frame_bytes_max: FRAME_BYTES_MAX,
                batch_bytes_max: 16 * 1024,
                inflight_max,
            },
        )
        .await;
        script(m).await;
    })
    .detach();
    addr
}

fn offsets_request(body: &[u8]) -> u32 {
    let r: ListOffsetsRequest<'_> = decode_request(body).unwrap();
    r.partition
}

#[test]
fn pipelined_requests_are_matched_by_id_in_any_order() {
    smol::block_on(async {
        let addr = mock(16, |mut m| async move {
            let mut got = Vec::new();
            for _ in 0..3 {
                let (h, body) = m.next().await.unwrap();
                got.push((h.request_id, offsets_request(&body)));
            }
            // Answer in reverse order; each answer encodes the partition it was asked for.
            for (id, partition) in got.into_iter().rev() {
                let answer = ListOffsetsResponse {
                    earliest: u64::from(partition),
                    next: u64::from(partition) * 100,
                };
                m.ok(Kind::ListOffsets, id, &answer).await;
            }
            while m.next().await.is_some() {}
        })
        .await;
        let client = Client::connect(addr.to_string()).await.unwrap();
        assert_eq!(client.server_info().server, "mock");
        assert_eq!(client.server_info().inflight_max, 16);
        let (a, (b, c)) = smol::future::zip(
            client.list_offsets("t", 1),
            smol::future::zip(client.list_offsets("t", 2), client.list_offsets("t", 3)),
        )
        .await;
        assert_eq!(
            a.unwrap(),
            Offsets {
                earliest: 1,
                next: 100
            }
        );
        assert_eq!(
            b.unwrap(),
            Offsets {
                earliest: 2,
                next: 200
            }
        );
        assert_eq!(
            c.unwrap(),
            Offsets {
                earliest: 3,
                next: 300
            }
        );
        client.close().await;
    });
}

#[test]
fn never_more_requests_in_flight_than_the_broker_allows() {
    smol::block_on(async {
        let addr = mock(2, |mut m| async move {
            let first = m.next().await.unwrap();
            let second = m.next().await.unwrap();
            // A third request must not come while two are unanswered.
            assert!(
                m.next_within(200).await.is_none(),
                "third request sent early"
            );
            let answer = ListOffsetsResponse {
                earliest: 0,
                next: 0,
            };
            m.ok(Kind::ListOffsets, first.0.request_id, &answer).await;
            let third = m.next().await.unwrap();
            m.ok(Kind::ListOffsets, second.0.request_id, &answer).await;
            m.ok(Kind::ListOffsets, third.0.request_id, &answer).await;
            while m.next().await.is_some() {}
        })
        .await;
        let client = Client::connect(addr.to_string()).await.unwrap();
        let calls = vec![
            client.list_offsets("t", 0),
            client.list_offsets("t", 1),
            client.list_offsets("t", 2),
        ];
        for r in join_all(calls).await {
            assert_eq!(
                r.unwrap(),
                Offsets {
                    earliest: 0,
                    next: 0
                }
            );
        }
        client.close().await;
    });
}

#[test]
fn goodbye_fails_pending_and_later_requests() {
    smol::block_on(async {
        let addr = mock(16, |mut m| async move {
            let (h, _) = m.next().await.unwrap();
            m.err(
                Kind::Goodbye,
                h.request_id,
                ErrorCode::FrameTooLarge,
                "frame of 9999999 bytes exceeds frame_bytes_max",
            )
            .await;
        })
        .await;
        let client = Client::connect(addr.to_string()).await.unwrap();
        let e = client.fetch("t", 0, 0, 1024, 10_000).await.unwrap_err();
        assert_eq!(e.code(), Some(ErrorCode::FrameTooLarge));
        assert!(matches!(e, ClientError::Goodbye { .. }), "{e:?}");
        assert_eq!(
            e.to_string(),
            "the broker closed the connection: FRAME_TOO_LARGE (2): frame of 9999999 bytes \
             exceeds frame_bytes_max"
        );
        let later = client.list_topics().await.unwrap_err();
        assert_eq!(later.code(), Some(ErrorCode::FrameTooLarge));
    });
}

#[test]
fn connection_loss_fails_pending_requests() {
    smol::block_on(async {
        let addr = mock(16, |mut m| async move {
            let _ = m.next().await;
            // Half a frame, then the end of the stream.
            m.stream.write_all(&[1, 2, 3]).await.unwrap();
            drop(m);
        })
        .await;
        let client = Client::connect(addr.to_string()).await.unwrap();
        let e = client.status().await.unwrap_err();
        match &e {
            ClientError::Io(io) => {
                assert_eq!(io.kind(), std::io::ErrorKind::UnexpectedEof);
                assert!(io.to_string().contains("in the middle of a frame"), "{io}");
            }
            other => panic!("{other:?}"),
        }
        assert!(client.status().await.is_err());
    });
}

#[test]
fn server_errors_keep_the_connection() {
    smol::block_on(async {
        let addr = mock(16, |mut m| async move {
            let (h, _) = m.next().await.unwrap();
            m.err(
                Kind::DescribeTopic,
                h.request_id,
                ErrorCode::UnknownTopic,
                "no topic nope",
            )
            .await;
            let (h, _) = m.next().await.unwrap();
            m.ok(
                Kind::ListTopics,
                h.request_id,
                &ListTopicsResponse {
                    topics: Seq::Slice(&[
                        crate::protocol::messages::TopicInfo {
                            name: "a",
                            partitions: 2,
                        },
                        crate::protocol::messages::TopicInfo {
                            name: "b",
                            partitions: 1,
                        },
                    ]),
                },
            )
            .await;
            while m.next().await.is_some() {}
        })
        .await;
        let client = Client::connect(addr.to_string()).await.unwrap();
        let e = client.describe_topic("nope").await.unwrap_err();
        assert_eq!(e.code(), Some(ErrorCode::UnknownTopic));
        assert_eq!(
            e.to_string(),
            "server refused: UNKNOWN_TOPIC (7): no topic nope"
        );
        assert!(e.connection_usable());
        let topics = client.list_topics().await.unwrap();
        assert_eq!(
            topics,
            vec![
                TopicInfo {
                    name: "a".into(),
                    partitions: 2
                },
                TopicInfo {
                    name: "b".into(),
                    partitions: 1
                }
            ]
        );
        client.close().await;
    });
}

fn record(value: &[u8], key: Option<&[u8]>, headers: &[(&str, &[u8])]) -> Record {
    Record {
        timestamp_ms: 1_700_000_000_000,
        key: key.map(<[u8]>::to_vec),
        value: value.to_vec(),
        headers: headers
            .iter()
            .map(|(n, v)| (n.to_string(), v.to_vec()))
            .collect(),
    }
}

#[test]
fn produce_and_fetch_bodies() {
    smol::block_on(async {
        let addr = mock(16, |mut m| async move {
            // PRODUCE: check every field the client encoded.
            let (h, body) = m.next().await.unwrap();
            assert_eq!(h.kind, Kind::Produce as u8);
            let p: ProduceRequest<'_> = decode_request(&body).unwrap();
            assert_eq!(
                (p.topic, p.partition, p.acks),
                ("t", Some(3), WireAcks::Durable)
            );
            let records: Vec<RecordIn<'_>> = p.records.iter().map(Result::unwrap).collect();
            assert_eq!(records.len(), 2);
            assert_eq!(records[0].key, Some(&b"k"[..]));
            assert_eq!(records[0].value, b"one");
            let h0: Vec<_> = records[0].headers.iter().map(Result::unwrap).collect();
            assert_eq!((h0.len(), h0[0].name, h0[0].value), (1, "h", &b"x"[..]));
            assert_eq!(records[1].key, None);
            assert_eq!(records[1].headers.len(), 2);
            let ack = ProduceResponse {
                partition: 3,
                base_offset: 40,
                count: 2,
            };
            m.ok(Kind::Produce, h.request_id, &ack).await;

            // acks = none: no answer expected; the next frame is the FETCH.
            let (_, body) = m.next().await.unwrap();
            let p: ProduceRequest<'_> = decode_request(&body).unwrap();
            assert_eq!(p.acks, WireAcks::None);
            let (h2, body) = m.next().await.unwrap();
            let f: FetchRequest<'_> = decode_request(&body).unwrap();
            assert_eq!(
                (f.topic, f.partition, f.offset, f.wait_ms_max),
                ("t", 3, 40, 250)
            );
            assert!(f.bytes_max <= FRAME_BYTES_MAX);
            let headers = [Header {
                name: "h",
                value: b"x",
            }];
            let out = [
                RecordOut {
                    offset: 40,
                    timestamp_ms: 5,
                    key: Some(b"k"),
                    value: b"one",
                    headers: Seq::Slice(&headers),
                },
                RecordOut {
                    offset: 41,
                    timestamp_ms: -1,
                    key: None,
                    value: b"",
                    headers: Seq::Slice(&[]),
                },
            ];
            let answer = FetchResponse {
                partition: 3,
                earliest: 10,
                next: 42,
                records: Seq::Slice(&out),
            };
            m.ok(Kind::Fetch, h2.request_id, &answer).await;

            let (h, _) = m.next().await.unwrap();
            let parts = [WirePartitionStatus {
                topic: "t",
                partition: 3,
                earliest: 10,
                next: 42,
            }];
            let status = StatusResponse {
                uptime_ms: 1234,
                ring_bytes: 1 << 20,
                ring_used_bytes: 4096,
                segments_live: 1,
                segments_total: 16,
                connections: 1,
                partitions: Seq::Slice(&parts),
            };
            m.ok(Kind::Status, h.request_id, &status).await;
            while m.next().await.is_some() {}
        })
        .await;
        let client = Client::connect(addr.to_string()).await.unwrap();
        let batch = [
            record(b"one", Some(b"k"), &[("h", b"x")]),
            record(b"two", None, &[("a", b"1"), ("b", b"")]),
        ];
        let at = client
            .produce("t", Some(3), Acks::Durable, &batch)
            .await
            .unwrap();
        let at = at.unwrap();
        assert_eq!((at.partition, at.base_offset, at.count), (3, 40, 2));
        assert_eq!(at.next_offset(), 42);
        let none = client
            .produce("t", None, Acks::None, &batch[..1])
            .await
            .unwrap();
        assert_eq!(none, None);
        let f = client.fetch("t", 3, 40, u32::MAX, 250).await.unwrap();
        assert_eq!((f.partition, f.earliest, f.next), (3, 10, 42));
        assert_eq!(f.next_fetch_offset(40), 42);
        assert_eq!(
            f.records,
            vec![
                FetchedRecord {
                    offset: 40,
                    record: Record {
                        timestamp_ms: 5,
                        key: Some(b"k".to_vec()),
                        value: b"one".to_vec(),
                        headers: vec![("h".into(), b"x".to_vec())],
                    },
                },
                FetchedRecord {
                    offset: 41,
                    record: Record {
                        timestamp_ms: -1,
                        key: None,
                        value: vec![],
                        headers: vec![],
                    },
                },
            ]
        );
        let s = client.status().await.unwrap();
        assert_eq!(s.uptime_ms, 1234);
        assert_eq!(
            s.partitions,
            vec![PartitionStatus {
                topic: "t".into(),
                partition: 3,
                earliest: 10,
                next: 42
            }]
        );
        client.close().await;
    });
}

#[test]
fn forwarder_status_bodies() {
    smol::block_on(async {
        let addr = mock(16, |mut m| async move {
            // A forwarder with one partition, backing off after an error.
            let (h, body) = m.next().await.unwrap();
            assert_eq!(h.kind, Kind::ForwarderStatus as u8);
            let _: Empty = decode_request(&body).unwrap();
            let parts = [WireForwardPartition {
                topic: "t",
                partition: 3,
                upstream_topic: "up.t",
                position: Some(40),
                durable_next: 42,
                bytes_behind: 96,
                oldest_unforwarded_ms: Some(-5),
                last_commit_ms: Some(1_700_000_000_000),
            }];
            let status = ForwarderStatusResponse {
                configured: true,
                state: 2,
                last_error: Some("connection refused"),
                last_commit_ms: Some(1_700_000_000_001),
                commits: 7,
                records_forwarded: 40,
                gaps: 1,
                partitions: Seq::Slice(&parts),
            };
            m.ok(Kind::ForwarderStatus, h.request_id, &status).await;

            // No forwarder configured.
            let (h, _) = m.next().await.unwrap();
            let none = ForwarderStatusResponse {
                configured: false,
                state: 0,
                last_error: None,
                last_commit_ms: None,
                commits: 0,
                records_forwarded: 0,
                gaps: 0,
                partitions: Seq::Slice(&[]),
            };
            m.ok(Kind::ForwarderStatus, h.request_id, &none).await;

            // A broker that predates the kind; the connection stays usable.
            let (h, _) = m.next().await.unwrap();
            m.err(
                Kind::ForwarderStatus,
                h.request_id,
                ErrorCode::UnknownKind,
                "unknown kind 0x40",
            )
            .await;
            let (h, _) = m.next().await.unwrap();
            assert_eq!(h.kind, Kind::ListOffsets as u8);
            let answer = ListOffsetsResponse {
                earliest: 0,
                next: 1,
            };
            m.ok(Kind::ListOffsets, h.request_id, &answer).await;
            while m.next().await.is_some() {}
        })
        .await;
        let client = Client::connect(addr.to_string()).await.unwrap();
        let f = client.forwarder_status().await.unwrap();
        assert_eq!(
            f,
            ForwarderStatus {
                configured: true,
                link: ForwardLink::BackingOff,
                last_error: Some("connection refused".into()),
                last_commit_ms: Some(1_700_000_000_001),
                commits: 7,
                records_forwarded: 40,
                gaps: 1,
                partitions: vec![ForwardPartition {
                    topic: "t".into(),
                    partition: 3,
                    upstream_topic: "up.t".into(),
                    position: Some(40),
                    durable_next: 42,
                    bytes_behind: 96,
                    oldest_unforwarded_ms: Some(-5),
                    last_commit_ms: Some(1_700_000_000_000),
                }],
            }
        );
        assert_eq!(f.partitions[0].records_behind(), Some(2));

        let none = client.forwarder_status().await.unwrap();
        assert!(!none.configured);
        assert_eq!(none.link, ForwardLink::Connecting);
        assert!(none.partitions.is_empty());

        let e = client.forwarder_status().await.unwrap_err();
        assert_eq!(e.code(), Some(ErrorCode::UnknownKind));
        assert!(e.connection_usable());
        let o = client.list_offsets("t", 0).await.unwrap();
        assert_eq!(
            o,
            Offsets {
                earliest: 0,
                next: 1
            }
        );
        client.close().await;
    });
}

#[test]
fn forward_link_codes() {
    for code in 0..=u8::MAX {
        assert_eq!(ForwardLink::from_code(code).code(), code);
    }
    // The forwarder's own state numbers are the wire's (docs/PROTOCOL.md, FORWARDER_STATUS).
    for state in [
        crate::forwarder::LinkState::Connecting,
        crate::forwarder::LinkState::Connected,
        crate::forwarder::LinkState::BackingOff,
        crate::forwarder::LinkState::Fenced,
    ] {
        let link = ForwardLink::from_code(state.code());
        assert_eq!(link.name().replace(' ', "-"), state.name());
        assert_eq!(
            crate::forwarder::LinkState::from_code(link.code()),
            Some(state)
        );
    }
    assert_eq!(ForwardLink::from_code(4), ForwardLink::Other(4));
}

#[test]
fn too_large_requests_are_refused_locally() {
    smol::block_on(async {
        let addr = mock(16, |mut m| async move {
            // The only request that arrives is the LIST_TOPICS after the refused produce.
            let (h, _) = m.next().await.unwrap();
            assert_eq!(h.kind, Kind::ListTopics as u8);
            m.ok(
                Kind::ListTopics,
                h.request_id,
                &ListTopicsResponse {
                    topics: Seq::Slice(&[]),
                },
            )
            .await;
            while m.next().await.is_some() {}
        })
        .await;
        let client = Client::connect(addr.to_string()).await.unwrap();
        let big = record(&vec![7u8; FRAME_BYTES_MAX as usize], None, &[]);
        let e = client
            .produce("t", None, Acks::Durable, &[big])
            .await
            .unwrap_err();
        assert!(
            matches!(e, ClientError::TooLarge { frame_bytes_max, .. } if frame_bytes_max == FRAME_BYTES_MAX),
            "{e:?}"
        );
        assert!(client.list_topics().await.unwrap().is_empty());
        client.close().await;
    });
}

#[test]
fn produce_keyed_sends_one_batch_per_key() {
    smol::block_on(async {
        let addr = mock(16, |mut m| async move {
            let mut frames = Vec::new();
            for _ in 0..3 {
                frames.push(m.next().await.unwrap());
            }
            let mut seen = Vec::new();
            for (i, (h, body)) in frames.iter().enumerate() {
                let p: ProduceRequest<'_> = decode_request(body).unwrap();
                assert_eq!(p.partition, None);
                let records: Vec<_> = p.records.iter().map(Result::unwrap).collect();
                let keys: Vec<_> = records.iter().map(|r| r.key).collect();
                assert!(keys.windows(2).all(|w| w[0] == w[1]), "{keys:?}");
                let values: Vec<&[u8]> = records.iter().map(|r| r.value).collect();
                seen.push((keys[0].map(<[u8]>::to_vec), values.concat()));
                let ack = ProduceResponse {
                    partition: i as u32,
                    base_offset: 0,
                    count: keys.len() as u32,
                };
                m.ok(Kind::Produce, h.request_id, &ack).await;
            }
            seen.sort();
            assert_eq!(
                seen,
                vec![
                    (None, b"4".to_vec()),
                    (Some(b"a".to_vec()), b"13".to_vec()),
                    (Some(b"b".to_vec()), b"2".to_vec()),
                ]
            );
            while m.next().await.is_some() {}
        })
        .await;
        let client = Client::connect(addr.to_string()).await.unwrap();
        let records = [
            record(b"1", Some(b"a"), &[]),
            record(b"2", Some(b"b"), &[]),
            record(b"3", Some(b"a"), &[]),
            record(b"4", None, &[]),
        ];
        let answers = client
            .produce_keyed("t", Acks::Durable, &records)
            .await
            .unwrap();
        let counts: Vec<u32> = answers.iter().map(|a| a.unwrap().count).collect();
        assert_eq!(counts, vec![2, 1, 1]);
        client.close().await;
    });
}

#[test]
fn connect_errors_name_the_address() {
    smol::block_on(async {
        // Bind then drop a listener: nothing listens on that port now.
        let addr = {
            let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
            l.local_addr().unwrap()
        };
        let e = match Client::connect(addr.to_string()).await {
            Err(e) => e,
            Ok(_) => panic!("connected to a closed port"),
        };
        assert!(matches!(e, ClientError::Connect { .. }), "{e:?}");
        assert!(e.to_string().contains(&addr.to_string()), "{e}");
    });
}

/// The consumer-group requests (kinds 0x20–0x27): request bodies as the broker sees them,
/// answers as owned types, and group errors as codes with the connection still usable.
mod groups {
    use super::*;
    use crate::protocol::messages::{
        CommitOffsetsRequest, DescribeGroupRequest, DescribeGroupResponse, FetchOffsetsRequest,
        FetchOffsetsResponse, GroupInfo, GroupMember, GroupPartition, JoinGroupRequest,
        JoinGroupResponse, LeaveGroupRequest, ListGroupsResponse, MemberRequest, OffsetCommit,
        OffsetFetched, SyncGroupResponse,
    };

    fn tp(topic: &str, partition: u32) -> GroupPartitionRef {
        GroupPartitionRef {
            topic: topic.into(),
            partition,
        }
    }

    #[test]
    fn join_sync_heartbeat_leave_bodies() {
        smol::block_on(async {
            let addr = mock(16, |mut m| async move {
                let (h, body) = m.next().await.unwrap();
                assert_eq!(h.kind, Kind::JoinGroup as u8);
                let r: JoinGroupRequest<'_> = decode_request(&body).unwrap();
                assert_eq!((r.group, r.member, r.client_id), ("g", None, "c"));
                assert_eq!(r.session_timeout_ms, 10_000);
                let s: Vec<&str> = r.strategies.iter().map(Result::unwrap).collect();
                let t: Vec<&str> = r.topics.iter().map(Result::unwrap).collect();
                assert_eq!((s, t), (vec!["sticky", "range"], vec!["t"]));
                let parts = [
                    GroupPartition {
                        topic: "t",
                        partition: 0,
                    },
                    GroupPartition {
                        topic: "t",
                        partition: 2,
                    },
                ];
                let joined = JoinGroupResponse {
                    generation: 4,
                    member: "c-1-0",
                    leader: "c-1-0",
                    strategy: "sticky",
                    assignment: Seq::Slice(&parts),
                };
                m.ok(Kind::JoinGroup, h.request_id, &joined).await;

                let (h, body) = m.next().await.unwrap();
                assert_eq!(h.kind, Kind::SyncGroup as u8);
                let r: MemberRequest<'_> = decode_request(&body).unwrap();
                assert_eq!((r.group, r.member, r.generation), ("g", "c-1-0", 4));
                let sync = SyncGroupResponse {
                    assignment: Seq::Slice(&parts[1..]),
                };
                m.ok(Kind::SyncGroup, h.request_id, &sync).await;

                let (h, body) = m.next().await.unwrap();
                assert_eq!(h.kind, Kind::Heartbeat as u8);
                let r: MemberRequest<'_> = decode_request(&body).unwrap();
                assert_eq!(r.generation, 4);
                m.err(
                    Kind::Heartbeat,
                    h.request_id,
                    ErrorCode::RebalanceInProgress,
                    "group \"g\" is rebalancing after generation 4: join again",
                )
                .await;

                let (h, body) = m.next().await.unwrap();
                assert_eq!(h.kind, Kind::LeaveGroup as u8);
                let r: LeaveGroupRequest<'_> = decode_request(&body).unwrap();
                assert_eq!((r.group, r.member), ("g", "c-1-0"));
                m.ok(Kind::LeaveGroup, h.request_id, &Empty {}).await;
                while m.next().await.is_some() {}
            })
            .await;
            let client = Client::connect(addr.to_string()).await.unwrap();
            let j = client
                .join_group("g", None, "c", 10_000, &["sticky", "range"], &["t"])
                .await
                .unwrap();
            assert_eq!(
                j,
                Joined {
                    generation: 4,
                    member: "c-1-0".into(),
                    leader: "c-1-0".into(),
                    strategy: "sticky".into(),
                    assignment: vec![tp("t", 0), tp("t", 2)],
                }
            );
            let s = client.sync_group("g", "c-1-0", 4).await.unwrap();
            assert_eq!(s, vec![tp("t", 2)]);
            let e = client.heartbeat("g", "c-1-0", 4).await.unwrap_err();
            assert_eq!(e.code(), Some(ErrorCode::RebalanceInProgress));
            assert!(e.connection_usable());
            client.leave_group("g", "c-1-0").await.unwrap();
            client.close().await;
        });
    }

    #[test]
    fn commit_fetch_list_describe_bodies() {
        smol::block_on(async {
            let addr = mock(16, |mut m| async move {
                let (h, body) = m.next().await.unwrap();
                assert_eq!(h.kind, Kind::CommitOffsets as u8);
                let r: CommitOffsetsRequest<'_> = decode_request(&body).unwrap();
                assert_eq!((r.group, r.member, r.generation), ("g", Some("m"), 2));
                let o: Vec<OffsetCommit<'_>> = r.offsets.iter().map(Result::unwrap).collect();
                assert_eq!(o.len(), 2);
                assert_eq!((o[1].topic, o[1].partition, o[1].offset), ("t", 1, 9));
                assert_eq!(o[1].metadata, "meta");
                m.err(
                    Kind::CommitOffsets,
                    h.request_id,
                    ErrorCode::IllegalGeneration,
                    "generation 2 of group \"g\" is not the current one (3): join again",
                )
                .await;

                let (h, body) = m.next().await.unwrap();
                assert_eq!(h.kind, Kind::CommitOffsets as u8);
                let r: CommitOffsetsRequest<'_> = decode_request(&body).unwrap();
                assert_eq!((r.member, r.generation), (None, 0));
                m.ok(Kind::CommitOffsets, h.request_id, &Empty {}).await;

                let (h, body) = m.next().await.unwrap();
                assert_eq!(h.kind, Kind::FetchOffsets as u8);
                let r: FetchOffsetsRequest<'_> = decode_request(&body).unwrap();
                let p: Vec<GroupPartition<'_>> = r.partitions.iter().map(Result::unwrap).collect();
                assert_eq!((r.group, r.member, p.len()), ("g", None, 1));
                let fetched = [OffsetFetched {
                    topic: "t",
                    partition: 1,
                    committed: Some(9),
                    metadata: "meta",
                    commit_timestamp_ms: 1_700_000_000_000,
                    earliest: 10,
                    next: 12,
                }];
                let resp = FetchOffsetsResponse {
                    offsets: Seq::Slice(&fetched),
                };
                m.ok(Kind::FetchOffsets, h.request_id, &resp).await;

                let (h, _) = m.next().await.unwrap();
                assert_eq!(h.kind, Kind::ListGroups as u8);
                let groups = [GroupInfo {
                    group: "g",
                    state: 2,
                    members: 1,
                }];
                let resp = ListGroupsResponse {
                    groups: Seq::Slice(&groups),
                };
                m.ok(Kind::ListGroups, h.request_id, &resp).await;

                let (h, body) = m.next().await.unwrap();
                assert_eq!(h.kind, Kind::DescribeGroup as u8);
                let r: DescribeGroupRequest<'_> = decode_request(&body).unwrap();
                assert_eq!(r.group, "g");
                let topics = ["t"];
                let parts = [GroupPartition {
                    topic: "t",
                    partition: 1,
                }];
                let members = [GroupMember {
                    member: "m",
                    client_id: "c",
                    session_timeout_ms: 6000,
                    topics: Seq::Slice(&topics),
                    assignment: Seq::Slice(&parts),
                }];
                let resp = DescribeGroupResponse {
                    group: "g",
                    exists: true,
                    state: 2,
                    generation: 3,
                    strategy: Some("range"),
                    leader: Some("m"),
                    members: Seq::Slice(&members),
                };
                m.ok(Kind::DescribeGroup, h.request_id, &resp).await;
                while m.next().await.is_some() {}
            })
            .await;
            let client = Client::connect(addr.to_string()).await.unwrap();
            let offsets = [
                OffsetToCommit {
                    topic: "t".into(),
                    partition: 0,
                    offset: 5,
                    metadata: String::new(),
                },
                OffsetToCommit {
                    topic: "t".into(),
                    partition: 1,
                    offset: 9,
                    metadata: "meta".into(),
                },
            ];
            let e = client
                .commit_offsets("g", Some(("m", 2)), &offsets)
                .await
                .unwrap_err();
            assert_eq!(e.code(), Some(ErrorCode::IllegalGeneration));
            client.commit_offsets("g", None, &offsets).await.unwrap();
            let f = client.fetch_offsets("g", None, &[("t", 1)]).await.unwrap();
            assert_eq!(
                f,
                vec![CommittedOffsetInfo {
                    topic: "t".into(),
                    partition: 1,
                    committed: Some(9),
                    metadata: "meta".into(),
                    commit_timestamp_ms: 1_700_000_000_000,
                    earliest: 10,
                    next: 12,
                }]
            );
            assert_eq!(f[0].lag(), Some(3));
            assert!(f[0].reclaimed());
            let l = client.list_groups().await.unwrap();
            assert_eq!(
                l,
                vec![GroupListing {
                    group: "g".into(),
                    state: 2,
                    members: 1,
                }]
            );
            assert_eq!(group_state_name(l[0].state), "Stable");
            let d = client.describe_group("g").await.unwrap();
            assert_eq!(
                d,
                GroupSummary {
                    group: "g".into(),
                    exists: true,
                    state: 2,
                    generation: 3,
                    strategy: Some("range".into()),
                    leader: Some("m".into()),
                    members: vec![GroupMemberInfo {
                        member: "m".into(),
                        client_id: "c".into(),
                        session_timeout_ms: 6000,
                        topics: vec!["t".into()],
                        assignment: vec![tp("t", 1)],
                    }],
                }
            );
            client.close().await;
        });
    }
}
