//! The connection's moving parts: the bounded frame reader, the writer task that coalesces
//! queued frames into few writes, the reader task that hands each response to its waiter by
//! request id, and the table of pending requests.

use std::collections::HashMap;
use std::io;
use std::net::Shutdown;
use std::sync::{Mutex, MutexGuard, PoisonError};

use smol::channel::{Receiver, Sender};
use smol::io::{AsyncReadExt, AsyncWriteExt};
use smol::lock::SemaphoreGuardArc;
use smol::net::TcpStream;

use super::error::{ClientError, Ended};
use crate::protocol::body::{Response, decode_response};
use crate::protocol::frame::{self, Decoded, FrameHeader};
use crate::protocol::messages::Empty;
use crate::protocol::{ErrorCode, HEADER_BYTES, Kind, VERSION};

/// The reader's buffer starts this big and grows only as far as a frame needs (never past the
/// decode limit, which `frame::decode` enforces before the body is buffered).
const READ_BUF_INITIAL_BYTES: usize = 64 * 1024;
/// The writer gathers queued frames into one write up to about this many bytes.
const WRITE_GATHER_BYTES: usize = 256 * 1024;

/// Reads whole frames from a byte stream into a buffer bounded by `limit`.
pub(crate) struct FrameReader {
    buf: Vec<u8>,
    start: usize,
    end: usize,
    limit: u32,
}

impl FrameReader {
    pub(crate) fn new(limit: u32) -> FrameReader {
        FrameReader {
            buf: vec![0; READ_BUF_INITIAL_BYTES.min(limit as usize).max(HEADER_BYTES)],
            start: 0,
            end: 0,
            limit,
        }
    }

    pub(crate) fn set_limit(&mut self, limit: u32) {
        self.limit = limit;
    }

    /// The next frame: its header and a copy of its body.
    pub(crate) async fn read_frame(
        &mut self,
        stream: &mut TcpStream,
    ) -> Result<(FrameHeader, Vec<u8>), Ended> {
        loop {
            match frame::decode(&self.buf[self.start..self.end], self.limit) {
                Ok(Decoded::Frame { header, len }) => {
                    let body = self.buf[self.start + HEADER_BYTES..self.start + len].to_vec();
                    self.start += len;
                    if self.start == self.end {
                        self.start = 0;
                        self.end = 0;
                    }
                    return Ok((header, body));
                }
                Ok(Decoded::Incomplete { needed }) => {
                    if self.start + needed > self.buf.len() {
                        self.buf.copy_within(self.start..self.end, 0);
                        self.end -= self.start;
                        self.start = 0;
                        if needed > self.buf.len() {
                            // `needed` is at most `limit`: decode refused anything longer.
                            self.buf.resize(needed, 0);
                        }
                    }
                    let n = stream
                        .read(&mut self.buf[self.end..])
                        .await
                        .map_err(|e| Ended::from_io(&e))?;
                    if n == 0 {
                        let partial = self.end - self.start;
                        let text = if partial == 0 {
                            "the broker closed the connection".to_string()
                        } else {
                            format!(
                                "the broker closed the connection in the middle of a frame \
                                 ({partial} bytes of it received)"
                            )
                        };
                        return Err(Ended::Io {
                            kind: io::ErrorKind::UnexpectedEof,
                            text,
                        });
                    }
                    self.end += n;
                }
                Err(e) => {
                    return Err(Ended::Protocol {
                        detail: format!("a frame from the broker does not decode: {e}"),
                    });
                }
            }
        }
    }
}

/// A request waiting for its response. Dropping it (when answered or failed) returns its
/// in-flight permit.
pub(crate) struct Waiter {
    pub(crate) kind: u8,
    pub(crate) reply: Sender<Result<Vec<u8>, ClientError>>,
    pub(crate) _permit: SemaphoreGuardArc,
}

#[derive(Default)]
pub(crate) struct State {
    pub(crate) pending: HashMap<u32, Waiter>,
    /// Set once, when the connection ends; every later request fails with it.
    pub(crate) ended: Option<Ended>,
}

/// What the client handle and both tasks share.
#[derive(Default)]
pub(crate) struct Shared {
    state: Mutex<State>,
}

impl Shared {
    pub(crate) fn lock(&self) -> MutexGuard<'_, State> {
        // A panic while holding this lock leaves the map consistent (single inserts and
        // removes), so a poisoned lock is still usable.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Ends the connection (the first reason wins) and fails every pending request with it.
    pub(crate) fn end(&self, why: Ended) {
        let waiters: Vec<Waiter> = {
            let mut state = self.lock();
            if state.ended.is_none() {
                state.ended = Some(why);
            }
            state.pending.drain().map(|(_, w)| w).collect()
        };
        let ended = self.ended_error();
        for w in waiters {
            let _ = w.reply.try_send(Err(ended.error()));
        }
    }

    /// Why the connection ended (`Closed` if it has not).
    pub(crate) fn ended_error(&self) -> Ended {
        self.lock().ended.clone().unwrap_or(Ended::Closed)
    }

    /// Forgets a request that was never handed to the writer.
    pub(crate) fn forget(&self, request_id: u32) {
        self.lock().pending.remove(&request_id);
    }
}

/// Writes queued frames until the channel is closed and drained (then shuts the write half
/// down, so the broker sees the end) or a write fails (then ends the connection).
pub(crate) async fn writer(mut stream: TcpStream, frames: Receiver<Vec<u8>>, shared: &Shared) {
    let mut gathered: Vec<u8> = Vec::new();
    while let Ok(first) = frames.recv().await {
        let result = match frames.try_recv() {
            Err(_) => stream.write_all(&first).await,
            Ok(second) => {
                gathered.clear();
                gathered.extend_from_slice(&first);
                gathered.extend_from_slice(&second);
                while gathered.len() < WRITE_GATHER_BYTES {
                    match frames.try_recv() {
                        Ok(f) => gathered.extend_from_slice(&f),
                        Err(_) => break,
                    }
                }
                stream.write_all(&gathered).await
            }
        };
        if let Err(e) = result {
            shared.end(Ended::from_io(&e));
            let _ = stream.shutdown(Shutdown::Both);
            return;
        }
        if gathered.capacity() > 2 * WRITE_GATHER_BYTES {
            gathered = Vec::new();
        }
    }
    let _ = stream.flush().await;
    let _ = stream.shutdown(Shutdown::Write);
}

/// Reads responses and hands each to its waiter until the connection ends.
pub(crate) async fn reader(mut stream: TcpStream, mut frames: FrameReader, shared: &Shared) {
    let why = loop {
        let (header, body) = match frames.read_frame(&mut stream).await {
            Ok(f) => f,
            Err(why) => break why,
        };
        if let Err(why) = check_header(&header) {
            break why;
        }
        if header.kind == Kind::Goodbye as u8 {
            break goodbye(&body);
        }
        let waiter = shared.lock().pending.remove(&header.request_id);
        let Some(w) = waiter else {
            // A response to nothing we wait for: the request was a produce with acks = none
            // that the broker answered anyway (with an error), or the caller gave up on it.
            log::debug!(
                "outpost client: response to request {} (kind {:#04x}) nobody waits for",
                header.request_id,
                header.kind
            );
            continue;
        };
        let answer = if w.kind == header.kind {
            Ok(body)
        } else {
            Err(ClientError::Protocol {
                detail: format!(
                    "request {} of kind {:#04x} was answered with kind {:#04x}",
                    header.request_id, w.kind, header.kind
                ),
            })
        };
        let _ = w.reply.try_send(answer);
    };
    shared.end(why);
    let _ = stream.shutdown(Shutdown::Both);
}

fn check_header(header: &FrameHeader) -> Result<(), Ended> {
    if !header.is_response() {
        return Err(Ended::Protocol {
            detail: format!(
                "frame of kind {:#04x} (request {}) lacks the RESPONSE flag",
                header.kind, header.request_id
            ),
        });
    }
    if header.version != VERSION {
        return Err(Ended::Protocol {
            detail: format!(
                "frame of protocol version {} (this client speaks {VERSION})",
                header.version
            ),
        });
    }
    Ok(())
}

/// The reason a GOODBYE body gives.
pub(crate) fn goodbye(body: &[u8]) -> Ended {
    match decode_response::<Empty>(body) {
        Ok(Response::Err { code, message }) => Ended::Goodbye {
            code,
            message: message.to_string(),
        },
        Ok(Response::Ok(_)) => Ended::Goodbye {
            code: ErrorCode::Ok,
            message: "GOODBYE without an error code".into(),
        },
        Err(e) => Ended::Protocol {
            detail: format!("a GOODBYE body does not decode: {e}"),
        },
    }
}
