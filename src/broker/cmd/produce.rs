//! `0x05 PRODUCE`: a batch of records appended contiguously to one partition of a topic.
//!
//! The partition: the request's, else Kafka's default partitioner on the first record's key,
//! else round robin per topic. The whole body is validated (every nested sequence) before
//! anything is appended. `acks = none`: no response at all, not even an error, once the body
//! has decoded far enough to say so.

use super::{Ctx, Failure, Outcome, append_failure, decode, partition, topic};
use crate::protocol::messages::{ProduceRequest, ProduceResponse, RecordIn, WireAcks};
use crate::protocol::murmur2::partition_for_key;
use crate::protocol::{ErrorCode, Kind, Seq};
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

/// Checks a batch's records without copying them: every nested sequence decodes, header names
/// are allowed, the batch is not empty. Returns the stored size of the records (without a
/// batch header) and the first record's key.
pub(crate) fn check_records<'a>(
    kind: Kind,
    records: &Seq<'a, RecordIn<'a>>,
) -> Result<(u64, Option<&'a [u8]>), Failure> {
    let bad = |what: &str, e: postcard::Error| {
        Failure::new(
            ErrorCode::BadBody,
            format_args!("{}: {what}: {e}", kind.name()),
        )
    };
    // All or nothing: every nested sequence decodes before anything is applied.
    records.validate().map_err(|e| bad("records", e))?;
    let mut first_key = None;
    let mut bytes = 0u64;
    for (i, r) in records.iter().enumerate() {
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
        bytes = bytes.saturating_add(stored_bytes(&r));
    }
    if records.is_empty() {
        return Err(Failure::new(
            ErrorCode::EmptyBatch,
            "a batch needs at least one record",
        ));
    }
    Ok((bytes, first_key))
}

/// Copies checked records ([`check_records`]) into storage records.
pub(crate) fn copy_records(
    kind: Kind,
    records: &Seq<'_, RecordIn<'_>>,
) -> Result<Vec<Record>, Failure> {
    let bad = |e: postcard::Error| {
        Failure::new(
            ErrorCode::BadBody,
            format_args!("{}: records: {e}", kind.name()),
        )
    };
    let mut out = Vec::with_capacity(records.len());
    for r in records.iter() {
        let r = r.map_err(bad)?;
        let mut headers = Vec::with_capacity(r.headers.len());
        for h in r.headers.iter() {
            let h = h.map_err(bad)?;
            headers.push((h.name.to_owned(), h.value.to_vec()));
        }
        out.push(Record {
            timestamp_ms: r.timestamp_ms,
            key: r.key.map(<[u8]>::to_vec),
            value: r.value.to_vec(),
            headers,
        });
    }
    Ok(out)
}

/// `BATCH_TOO_LARGE` unless a batch of `batch_bytes` (header included) fits.
pub(crate) fn check_batch_bytes<F: Flash>(
    ctx: &Ctx<'_, F>,
    batch_bytes: u64,
) -> Result<(), Failure> {
    let batch_bytes_max = ctx.broker.ring_config().batch_bytes_max;
    if batch_bytes > batch_bytes_max {
        return Err(Failure::new(
            ErrorCode::BatchTooLarge,
            format_args!(
                "batch of {batch_bytes} bytes exceeds batch_bytes_max ({batch_bytes_max})"
            ),
        ));
    }
    Ok(())
}

async fn produce<F: Flash>(ctx: &Ctx<'_, F>, req: &ProduceRequest<'_>) -> Outcome {
    let (bytes, first_key) = check_records(ctx.kind, &req.records)?;
    let batch_bytes = (BATCH_HEADER_BYTES as u64).saturating_add(bytes);
    let b = ctx.broker;
    let t = topic(b, req.topic)?;
    let p = match (req.partition, first_key) {
        (Some(p), _) => p,
        (None, Some(key)) => partition_for_key(key, t.partitions()),
        (None, None) => t.next_round_robin(),
    };
    let pid = partition(&t, p)?;
    // Refused before the records are copied: the copy is bounded by batch_bytes_max.
    check_batch_bytes(ctx, batch_bytes)?;
    let records = copy_records(ctx.kind, &req.records)?;
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
