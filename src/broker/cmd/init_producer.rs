//! `0x10 INIT_PRODUCER`: gives a producer name its id and next epoch, durably. A second
//! instance initialising the same name fences the first (its writes get `PRODUCER_FENCED`).

use super::{Ctx, Failure, append_failure, decode};
use crate::protocol::ErrorCode;
use crate::protocol::messages::{InitProducerRequest, InitProducerResponse};
use crate::storage::flash::Flash;
use crate::storage::producer::NAME_BYTES_MAX;

pub(crate) async fn apply<F: Flash>(ctx: &Ctx<'_, F>, body: &[u8]) -> Result<Vec<u8>, Failure> {
    let req: InitProducerRequest<'_> = decode(ctx.kind, body)?;
    check_name(req.name)?;
    let (id, epoch) = ctx
        .broker
        .log()
        .init_producer(req.name.as_bytes())
        .await
        .map_err(|e| append_failure(&e))?;
    ctx.ok(&InitProducerResponse {
        producer_id: id.0,
        epoch: epoch.0,
    })
}

/// A producer name: 1 to 249 bytes, no control characters (like a group id).
fn check_name(name: &str) -> Result<(), Failure> {
    if name.is_empty() || name.len() > NAME_BYTES_MAX || name.chars().any(char::is_control) {
        return Err(Failure::new(
            ErrorCode::InvalidProducerName,
            format_args!(
                "producer name {name:?}: it must be 1 to {NAME_BYTES_MAX} bytes without control \
                 characters"
            ),
        ));
    }
    Ok(())
}
