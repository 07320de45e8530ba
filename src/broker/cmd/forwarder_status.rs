//! `0x40 FORWARDER_STATUS`: the forwarder's link state, counters and every forwarded
//! partition's backlog (docs/FORWARDING.md); `configured = false` when no forwarder runs.

use super::{Ctx, Failure, MESSAGE_BYTES_MAX, decode};
use crate::protocol::Seq;
use crate::protocol::messages::{Empty, ForwardPartition, ForwarderStatusResponse};
use crate::storage::flash::Flash;

pub(crate) fn apply<F: Flash>(ctx: &Ctx<'_, F>, body: &[u8]) -> Result<Vec<u8>, Failure> {
    let _: Empty = decode(ctx.kind, body)?;
    let Some(status) = ctx.broker.forwarding() else {
        return ctx.ok(&ForwarderStatusResponse {
            configured: false,
            state: 0,
            last_error: None,
            last_commit_ms: None,
            commits: 0,
            records_forwarded: 0,
            gaps: 0,
            partitions: Seq::Slice(&[]),
        });
    };
    // One consistent copy, taken under the status lock and released before encoding.
    let s = status.snapshot();
    let partitions: Vec<ForwardPartition<'_>> = s
        .partitions
        .iter()
        .map(|((topic, partition), p)| ForwardPartition {
            topic,
            partition: *partition,
            upstream_topic: &p.upstream_topic,
            position: p.position,
            durable_next: p.durable_next,
            bytes_behind: p.bytes_behind,
            oldest_unforwarded_ms: p.oldest_unforwarded_ms,
            last_commit_ms: p.last_commit_ms,
        })
        .collect();
    ctx.ok(&ForwarderStatusResponse {
        configured: true,
        state: s.state.code(),
        last_error: s.last_error.as_deref().map(cut_message),
        last_commit_ms: s.last_commit_ms,
        commits: s.commits,
        records_forwarded: s.records_forwarded,
        gaps: s.gaps,
        partitions: Seq::Slice(&partitions),
    })
}

/// `message` cut to at most `MESSAGE_BYTES_MAX` bytes at a character boundary (an error
/// chain from Kafka can be long; the answer must stay small).
fn cut_message(message: &str) -> &str {
    if message.len() <= MESSAGE_BYTES_MAX {
        return message;
    }
    let mut end = MESSAGE_BYTES_MAX;
    while !message.is_char_boundary(end) {
        end -= 1;
    }
    &message[..end]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_errors_are_cut_at_a_character_boundary() {
        assert_eq!(cut_message("short"), "short");
        let exact = "x".repeat(MESSAGE_BYTES_MAX);
        assert_eq!(cut_message(&exact), exact);
        // 'é' is two bytes: one ASCII byte first puts a boundary just past the limit.
        let long = format!("x{}", "é".repeat(MESSAGE_BYTES_MAX));
        let cut = cut_message(&long);
        assert_eq!(cut.len(), MESSAGE_BYTES_MAX - 1);
        assert!(long.starts_with(cut));
    }
}
