//! `0x05 PRODUCE`: a batch of records appended contiguously to one partition of a topic.
//!
//! The partition: the request's, else Kafka's default partitioner on the first record's key,
//! else round robin per topic. The whole body is validated (every nested sequence) before
//! anything is appended. `acks = none`: no response at all, not even an error, once the body
//! has decoded far enough to say so.

use super::{Ctx, Failure, Outcome, append_failure, decode, partition, topic};
use crate::protocol::ErrorCode;
use crate::protocol::messages::{ProduceRequest, ProduceResponse, RecordIn, WireAcks};
use crate::protocol::murmur2::partition_for_key;
use crate::storage::flash::Flash;
use crate::storage::format::BATCH_HEADER_BYTES;
use crate::storage::{Acks, Record};

pub(crate) async fn apply<F: Flash>(ctx: &Ctx<'_, F>, body: &[u8]) -> Outcome {
    let req: ProduceRequest<'_> = decode(ctx.kind, body)?;
    let quiet = req.acks == WireAcks::None;
    match produce(ctx, &req).await {
        Ok(frame) => Ok(frame),
        Err(f) if quiet => {
            log::debug!(
                "broker: PRODUCE request {} (acks=none) to {:?} refused: {} {}",
                ctx.request_id,
                req.topic,
                f.code,
                f.message
            );
            Ok(None)
        }
        Err(f) => Err(f),
    }
}

async fn produce<F: Flash>(ctx: &Ctx<'_, F>, req: &ProduceRequest<'_>) -> Outcome {
    let bad = |what: &str, e: postcard::Error| {
        Failure::new(ErrorCode::BadBody, format_args!("PRODUCE: {what}: {e}"))
    };
    // All or nothing: every nested sequence decodes before anything is applied.
    req.records.validate().map_err(|e| bad("records", e))?;
    let mut first_key = None;
    let mut batch_bytes = BATCH_HEADER_BYTES as u64;
    for (i, r) in req.records.iter().enumerate() {
        let r = r.map_err(|e| bad("records", e))?;
        r.headers
            .validate()
            .map_err(|e| bad(&format!("record {i} headers"), e))?;
        // Every topic may be forwarded one day, and a Kafka record keeps one value per
        // header name here: docs/FORWARDING.md section 3.
        let names: Vec<&str> = r.headers.iter().flatten().map(|h| h.name).collect();
        crate::forwarder::origin::check_headers(&names)
            .map_err(|m| Failure::new(ErrorCode::InvalidRecord, format_args!("record {i}: {m}")))?;
        if i == 0 {
            first_key = r.key;
        }
        batch_bytes = batch_bytes.saturating_add(stored_bytes(&r));
    }
    if req.records.is_empty() {
        return Err(Failure::new(
            ErrorCode::EmptyBatch,
            "a batch needs at least one record",
        ));
    }
    let b = ctx.broker;
    let t = topic(b, req.topic)?;
    let p = match (req.partition, first_key) {
        (Some(p), _) => p,
        (None, Some(key)) => partition_for_key(key, t.partitions()),
        (None, None) => t.next_round_robin(),
    };
    let pid = partition(&t, p)?;
    // Refused before the records are copied: the copy is bounded by batch_bytes_max.
    let batch_bytes_max = b.ring_config().batch_bytes_max;
    if batch_bytes > batch_bytes_max {
        return Err(Failure::new(
            ErrorCode::BatchTooLarge,
            format_args!(
                "batch of {batch_bytes} bytes exceeds batch_bytes_max ({batch_bytes_max})"
            ),
        ));
    }
    let mut records = Vec::with_capacity(req.records.len());
    for r in req.records.iter() {
        let r = r.map_err(|e| bad("records", e))?;
        let mut headers = Vec::with_capacity(r.headers.len());
        for h in r.headers.iter() {
            let h = h.map_err(|e| bad("headers", e))?;
            headers.push((h.name.to_owned(), h.value.to_vec()));
        }
        records.push(Record {
            timestamp_ms: r.timestamp_ms,
            key: r.key.map(<[u8]>::to_vec),
            value: r.value.to_vec(),
            headers,
        });
    }
    let acks = match req.acks {
        WireAcks::None => Acks::None,
        WireAcks::Written => Acks::Written,
        WireAcks::Durable => Acks::Durable,
    };
    let appended = b
        .log()
        .append(pid, records, acks)
        .await
        .map_err(|e| append_failure(&e))?;
    match appended {
        None => Ok(None),
        Some(a) => ctx
            .ok(&ProduceResponse {
                partition: p,
                base_offset: a.base_offset.0,
                count: a.record_count,
            })
            .map(Some),
    }
}

/// The size a record takes in a stored batch (`storage::Record::encoded_bytes`, computed on
/// the wire form so an oversize batch is refused before it is copied).
fn stored_bytes(r: &RecordIn<'_>) -> u64 {
    let mut n = 4 + 8 + 4 + r.key.map_or(0, |k| k.len() as u64) + 4 + r.value.len() as u64 + 2;
    for h in r.headers.iter().flatten() {
        n += 2 + h.name.len() as u64 + 4 + h.value.len() as u64;
    }
    n
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::Seq;
    use crate::protocol::messages::Header;

    #[test]
    fn stored_bytes_matches_the_storage_encoding() {
        let headers = [Header {
            name: "h",
            value: b"vv",
        }];
        let r = RecordIn {
            timestamp_ms: 5,
            key: Some(b"key"),
            value: b"value",
            headers: Seq::Slice(&headers),
        };
        let stored = Record {
            timestamp_ms: 5,
            key: Some(b"key".to_vec()),
            value: b"value".to_vec(),
            headers: vec![("h".into(), b"vv".to_vec())],
        };
        assert_eq!(stored_bytes(&r), stored.encoded_bytes());
    }
}
