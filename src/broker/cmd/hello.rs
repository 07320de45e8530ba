//! `0x01 HELLO`: version negotiation and the server's limits.

use super::{Ctx, Failure, decode};
use crate::broker::SERVER_NAME;
use crate::protocol::messages::{HelloRequest, HelloResponse};
use crate::protocol::{ErrorCode, VERSION};
use crate::storage::flash::Flash;

/// Longest `client` text a HELLO may carry.
pub(crate) const CLIENT_BYTES_MAX: usize = 64;

pub(crate) fn apply<F: Flash>(ctx: &Ctx<'_, F>, body: &[u8]) -> Result<Vec<u8>, Failure> {
    let req: HelloRequest<'_> = decode(ctx.kind, body)?;
    if req.client.len() > CLIENT_BYTES_MAX {
        return Err(Failure::new(
            ErrorCode::BadBody,
            format_args!(
                "HELLO: client is {} bytes, at most {CLIENT_BYTES_MAX}",
                req.client.len()
            ),
        ));
    }
    if !(req.version_min..=req.version_max).contains(&VERSION) {
        return Err(Failure::new(
            ErrorCode::UnsupportedVersion,
            format_args!(
                "this server speaks protocol version {VERSION} only; the client offers {}..={}",
                req.version_min, req.version_max
            ),
        ));
    }
    let b = ctx.broker;
    // batch_bytes_max is at most 4 GiB - 1 (the ring's configuration validates it).
    let batch_bytes_max = u32::try_from(b.ring_config().batch_bytes_max).unwrap_or(u32::MAX);
    ctx.ok(&HelloResponse {
        version: VERSION,
        server: SERVER_NAME,
        frame_bytes_max: b.config().frame_bytes_max,
        batch_bytes_max,
        inflight_max: b.config().inflight_max,
    })
}
