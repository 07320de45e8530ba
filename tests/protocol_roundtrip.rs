//! Protocol codec round trips through the public API, including the device-side
//! `FrameReader` over `embedded-io`.

use outpost::protocol::body::{self, Response};
use outpost::protocol::frame::{self, Decoded};
use outpost::protocol::io::{FrameReader, ReadFrameError};
use outpost::protocol::messages::*;
use outpost::protocol::{ErrorCode, Kind, Seq};

#[test]
fn produce_request_round_trip_with_nested_sequences() {
    let h1 = [Header {
        name: "trace",
        value: b"abc",
    }];
    let recs = [
        RecordIn {
            timestamp_ms: -5,
            key: Some(b"k1"),
            value: b"hello",
            headers: Seq::Slice(&h1),
        },
        RecordIn {
            timestamp_ms: 1_700_000_000_000,
            key: None,
            value: b"",
            headers: Seq::default(),
        },
    ];
    let req = ProduceRequest {
        topic: "sensors",
        partition: None,
        acks: WireAcks::Durable,
        records: Seq::Slice(&recs),
    };
    let mut buf = [0u8; 256];
    let n = body::encode_request(&mut buf, Kind::Produce as u8, 77, &req).unwrap();
    let Decoded::Frame { header, len } = frame::decode(&buf[..n], 1024).unwrap() else {
        panic!("incomplete")
    };
    assert_eq!(len, n);
    assert_eq!(header.request_id, 77);
    assert_eq!(header.kind, Kind::Produce as u8);
    let got: ProduceRequest<'_> = body::decode_request(&buf[16..n]).unwrap();
    assert_eq!(got.topic, "sensors");
    assert_eq!(got.acks, WireAcks::Durable);
    got.records.validate().unwrap();
    let out: Vec<RecordIn<'_>> = got.records.iter().map(Result::unwrap).collect();
    assert_eq!(out.len(), 2);
    assert_eq!(out[0].key, Some(&b"k1"[..]));
    assert_eq!(out[0].value, b"hello");
    let hs: Vec<Header<'_>> = out[0].headers.iter().map(Result::unwrap).collect();
    assert_eq!(hs[0].name, "trace");
    assert_eq!(out[1].timestamp_ms, 1_700_000_000_000);
    // Re-encoding the decoded (borrowed) form gives the same bytes.
    let mut again = [0u8; 256];
    let m = body::encode_request(&mut again, Kind::Produce as u8, 77, &got).unwrap();
    assert_eq!(&buf[..n], &again[..m]);
}

#[test]
fn error_response_round_trip_and_incomplete_frames() {
    let mut buf = [0u8; 128];
    let n = body::encode_error(
        &mut buf,
        Kind::Fetch as u8,
        9,
        ErrorCode::OffsetOutOfRange,
        "offset 5 below earliest 10",
    )
    .unwrap();
    for cut in 0..n {
        assert!(matches!(
            frame::decode(&buf[..cut], 1024),
            Ok(Decoded::Incomplete { .. })
        ));
    }
    let r: Response<'_, FetchResponse<'_>> = body::decode_response(&buf[16..n]).unwrap();
    match r {
        Response::Err { code, message } => {
            assert_eq!(code, ErrorCode::OffsetOutOfRange);
            assert_eq!(message, "offset 5 below earliest 10");
        }
        Response::Ok(_) => panic!("expected an error"),
    }
}

#[test]
fn frame_reader_reads_pipelined_frames_and_refuses_oversize() {
    let mut stream = Vec::new();
    let mut buf = [0u8; 64];
    for id in 0..3u32 {
        let n = body::encode_ok(
            &mut buf,
            Kind::ListOffsets as u8,
            id,
            &ListOffsetsResponse {
                earliest: u64::from(id),
                next: 100,
            },
        )
        .unwrap();
        stream.extend_from_slice(&buf[..n]);
    }
    let mut reader = FrameReader::<64>::new();
    let mut src: &[u8] = &stream;
    for id in 0..3u32 {
        let (h, b) = reader.read_frame(&mut src).unwrap();
        assert_eq!(h.request_id, id);
        assert!(h.is_response());
        match body::decode_response::<ListOffsetsResponse>(b).unwrap() {
            Response::Ok(r) => assert_eq!(r.earliest, u64::from(id)),
            Response::Err { .. } => panic!(),
        }
    }
    assert!(matches!(
        reader.read_frame(&mut src),
        Err(ReadFrameError::Eof { partial: 0 })
    ));
    // A frame larger than the reader's buffer is refused from its header alone.
    let big = [0u8; 200];
    let mut out = [0u8; 300];
    let n = body::encode_request(&mut out, Kind::Produce as u8, 1, &(&big[..])).unwrap();
    let mut small = FrameReader::<64>::new();
    let mut src: &[u8] = &out[..n];
    assert!(matches!(
        small.read_frame(&mut src),
        Err(ReadFrameError::Frame(frame::FrameError::TooLarge { .. }))
    ));
}
