//! One client connection: a read loop with a bounded buffer, frame decoding, pipelined
//! requests each served as its own task, and one writer that owns the socket's write side.
//!
//! - The read buffer starts at `READ_BUFFER_BYTES` (at most `frame_bytes_max`), grows to hold
//!   one frame of at most `frame_bytes_max` (the codec refuses a larger length before anything
//!   is read for it) and shrinks back once that frame is consumed.
//! - A broken frame (bad header CRC, reserved flags, too large) gets a GOODBYE with the
//!   codec's error code and the connection is closed: nothing after it can be delimited.
//! - A well-delimited frame with an unknown version or kind is answered and skipped.
//! - Each request runs as its own task, so responses go out in completion order (a long-poll
//!   FETCH does not hold back a PRODUCE behind it). At most `inflight_max` run at once; at the
//!   limit the loop stops reading the socket (back-pressure), and a request already buffered
//!   beyond it is answered `TOO_MANY_IN_FLIGHT`. A slot is returned once the response is queued
//!   for the writer, so queued responses are bounded too.
//! - No complete frame (and no request in flight) for `idle_timeout_ms`: the connection is
//!   closed. A write that does not complete within as long (a peer that stopped reading)
//!   closes it too.
//! - Nothing here touches another connection: every error ends this one only.

use std::net::Shutdown;
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

use smol::channel::{self, Receiver, Sender};
use smol::io::{AsyncReadExt, AsyncWriteExt};
use smol::net::TcpStream;
use smol::{Executor, Timer};

use super::Broker;
use super::cmd::{self, error_frame};
use super::inflight::{Inflight, Permit};
use super::lane::Lane;
use crate::protocol::frame::{self, Decoded, FrameError, FrameHeader};
use crate::protocol::{ErrorCode, HEADER_BYTES, Kind, VERSION};
use crate::storage::flash::Flash;

/// The read buffer's resting size (or `frame_bytes_max` if smaller).
const READ_BUFFER_BYTES: usize = 16 * 1024;
/// Responses smaller than this are gathered into one write.
const COALESCE_BYTES: usize = 64 * 1024;
/// Room in the writer's queue beyond `inflight_max`, for the read loop's own answers.
const OUT_QUEUE_EXTRA: usize = 16;
/// After a GOODBYE, how long incoming bytes are drained before the socket is closed (closing
/// with unread bytes would reset the connection and could lose the GOODBYE).
const LINGER: Duration = Duration::from_millis(500);

/// What the writer sends.
enum Out {
    /// A response, with the in-flight slot of its request (the read loop's own answers have
    /// none). The writer frees the slot when it takes the frame, before writing it: the client
    /// can only see the response after the slot is free, and until then the slot bounds the
    /// responses waiting for the writer.
    Frame(Vec<u8>, Option<Permit>),
    /// The last frame: write it, then close.
    Last(Vec<u8>),
}

/// Why the read loop ended.
enum End {
    /// The peer closed its side (or the socket failed).
    Eof,
    Idle,
    Stopping,
    /// A frame that cannot be delimited: GOODBYE and close.
    Broken(FrameError),
    /// The writer is gone (the peer stopped reading, or the socket failed).
    WriterGone,
}

/// The bounded read buffer: bytes `start..end` of `buf` are received and not yet consumed.
struct ReadBuf {
    buf: Vec<u8>,
    start: usize,
    end: usize,
    resting: usize,
}

impl ReadBuf {
    fn new(resting: usize) -> ReadBuf {
        ReadBuf {
            buf: vec![0; resting],
            start: 0,
            end: 0,
            resting,
        }
    }

    fn data(&self) -> &[u8] {
        &self.buf[self.start..self.end]
    }

    fn compact(&mut self) {
        self.buf.copy_within(self.start..self.end, 0);
        self.end -= self.start;
        self.start = 0;
    }

    /// Drops the first `n` buffered bytes; shrinks back to the resting size once what is left
    /// fits in it.
    fn consume(&mut self, n: usize) {
        self.start += n;
        if self.start == self.end {
            self.start = 0;
            self.end = 0;
        }
        if self.buf.len() > self.resting && self.end - self.start <= self.resting {
            self.compact();
            self.buf.truncate(self.resting);
            self.buf.shrink_to(self.resting);
        }
    }

    /// Makes room for a frame of `needed` bytes starting at `start` (`needed` was bounded by
    /// `frame_bytes_max` by the codec), with room to read into.
    fn reserve(&mut self, needed: usize) {
        if self.start + needed > self.buf.len() || self.end == self.buf.len() {
            self.compact();
        }
        if needed > self.buf.len() {
            self.buf.resize(needed, 0);
        }
    }

    fn spare(&mut self) -> &mut [u8] {
        &mut self.buf[self.end..]
    }

    fn filled(&mut self, n: usize) {
        self.end += n;
    }
}

/// Serves one connection until it ends. `ex` runs the request and writer tasks.
pub(crate) async fn serve<F: Flash + 'static>(
    stream: TcpStream,
    broker: Arc<Broker<F>>,
    ex: Weak<Executor<'static>>,
) {
    let peer = stream
        .peer_addr()
        .map_or_else(|_| "?".to_owned(), |a| a.to_string());
    if let Err(e) = stream.set_nodelay(true) {
        log::debug!("broker: {peer}: cannot set TCP_NODELAY: {e}");
    }
    let Some(executor) = ex.upgrade() else {
        return;
    };
    let cfg = broker.config().clone();
    let idle = Duration::from_millis(cfg.idle_timeout_ms);
    let (tx, rx) = channel::bounded(cfg.inflight_max as usize + OUT_QUEUE_EXTRA);
    let writer = executor.spawn(write_loop(stream.clone(), rx, idle));
    drop(executor);
    log::debug!("broker: {peer}: connected");

    let mut reader = Reader {
        stream: stream.clone(),
        broker: broker.clone(),
        ex,
        tx,
        inflight: Inflight::new(cfg.inflight_max),
        lane: Arc::new(Lane::default()),
        buf: ReadBuf::new(READ_BUFFER_BYTES.min(cfg.frame_bytes_max as usize)),
        frame_bytes_max: cfg.frame_bytes_max,
        idle,
    };
    let end = reader.run().await;
    match &end {
        End::Broken(e) => {
            log::debug!("broker: {peer}: {e}; sending GOODBYE and closing");
            let goodbye = error_frame(
                Kind::Goodbye as u8,
                e.request_id(),
                e.code(),
                &e.to_string(),
            );
            let _ = reader.tx.send(Out::Last(goodbye)).await;
        }
        End::Idle => log::debug!(
            "broker: {peer}: no frame for {} ms; closing",
            cfg.idle_timeout_ms
        ),
        End::Eof | End::Stopping | End::WriterGone => {}
    }
    let Reader {
        stream: mut read_half,
        buf,
        tx,
        ..
    } = reader;
    // The writer ends once every request task has queued its response (or given up).
    drop(tx);
    writer.await;
    if matches!(end, End::Broken(_)) {
        linger(&mut read_half, buf).await;
    }
    log::debug!("broker: {peer}: closed");
}

/// Reads and discards what the peer still sends, until it closes or `LINGER` passes.
async fn linger(stream: &mut TcpStream, mut buf: ReadBuf) {
    let deadline = Instant::now() + LINGER;
    loop {
        buf.start = 0;
        buf.end = 0;
        let read = async { stream.read(buf.spare()).await.ok() };
        let timeout = async {
            Timer::at(deadline).await;
            None
        };
        match smol::future::or(read, timeout).await {
            Some(n) if n > 0 => continue,
            _ => break,
        }
    }
    let _ = stream.shutdown(Shutdown::Both);
}

struct Reader<F: Flash> {
    stream: TcpStream,
    broker: Arc<Broker<F>>,
    ex: Weak<Executor<'static>>,
    tx: Sender<Out>,
    inflight: Arc<Inflight>,
    /// Orders this connection's idempotent writes (`lane.rs`).
    lane: Arc<Lane>,
    buf: ReadBuf,
    frame_bytes_max: u32,
    idle: Duration,
}

/// What woke the read loop.
enum Wake {
    Read(std::io::Result<usize>),
    Idle,
    Stop,
    Room,
}

impl<F: Flash + 'static> Reader<F> {
    async fn run(&mut self) -> End {
        let mut last_frame = Instant::now();
        loop {
            // Serve every complete frame buffered.
            loop {
                match frame::decode(self.buf.data(), self.frame_bytes_max) {
                    Err(e) => return End::Broken(e),
                    Ok(Decoded::Incomplete { needed }) => {
                        self.buf.reserve(needed);
                        break;
                    }
                    Ok(Decoded::Frame { header, len }) => {
                        last_frame = Instant::now();
                        let ok = self.frame(header, len).await;
                        self.buf.consume(len);
                        if !ok {
                            return End::WriterGone;
                        }
                    }
                }
            }
            if self.broker.is_shutting_down() {
                return End::Stopping;
            }
            // Back-pressure: no room for another request, so read nothing more until a
            // response goes out.
            if !self.inflight.has_room() {
                let room = async {
                    self.inflight.room().await;
                    Wake::Room
                };
                // On shutdown, the next turn answers what is buffered and ends.
                smol::future::or(room, stop(&self.broker)).await;
                continue;
            }
            let idle_at = last_frame.checked_add(self.idle);
            let read = async { Wake::Read(self.stream.read(self.buf.spare()).await) };
            let idle = async {
                match idle_at {
                    Some(at) => Timer::at(at).await,
                    None => Timer::never().await,
                };
                Wake::Idle
            };
            match smol::future::or(read, smol::future::or(stop(&self.broker), idle)).await {
                Wake::Read(Ok(0)) => return End::Eof,
                Wake::Read(Ok(n)) => self.buf.filled(n),
                Wake::Read(Err(e)) => {
                    log::debug!("broker: read failed: {e}");
                    return End::Eof;
                }
                Wake::Idle if self.inflight.count() > 0 => last_frame = Instant::now(),
                Wake::Idle => return End::Idle,
                Wake::Stop | Wake::Room => {}
            }
        }
    }

    /// Serves one complete frame of `len` bytes at the front of the buffer. False if the
    /// writer is gone.
    async fn frame(&mut self, header: FrameHeader, len: usize) -> bool {
        let id = header.request_id;
        let refuse =
            |code: ErrorCode, message: String| error_frame(header.kind, id, code, &message);
        let answer = if self.broker.is_shutting_down() {
            refuse(
                ErrorCode::ShuttingDown,
                "the broker is shutting down".into(),
            )
        } else if header.version != VERSION {
            refuse(
                ErrorCode::UnsupportedVersion,
                format!(
                    "frame version {}; this server speaks version {VERSION}",
                    header.version
                ),
            )
        } else {
            match Kind::from_u8(header.kind) {
                None | Some(Kind::Goodbye) => refuse(
                    ErrorCode::UnknownKind,
                    format!("unknown kind {:#04x}", header.kind),
                ),
                Some(kind) => match self.spawn(kind, id, len) {
                    Ok(()) => return true,
                    Err(frame) => frame,
                },
            }
        };
        self.tx.send(Out::Frame(answer, None)).await.is_ok()
    }

    /// Starts the request's task; or returns the refusal to send.
    fn spawn(&mut self, kind: Kind, id: u32, len: usize) -> Result<(), Vec<u8>> {
        let Some(permit) = self.inflight.try_acquire() else {
            return Err(error_frame(
                kind as u8,
                id,
                ErrorCode::TooManyInFlight,
                &format!(
                    "more than inflight_max ({}) requests unanswered on this connection",
                    self.broker.config().inflight_max
                ),
            ));
        };
        let Some(ex) = self.ex.upgrade() else {
            return Err(error_frame(
                kind as u8,
                id,
                ErrorCode::ShuttingDown,
                "the broker is shutting down",
            ));
        };
        let body = self.buf.data()[HEADER_BYTES..len].to_vec();
        let broker = self.broker.clone();
        let tx = self.tx.clone();
        // Taken here, in frame order.
        let turn =
            matches!(kind, Kind::ProduceIdempotent | Kind::AtomicWrite).then(|| self.lane.ticket());
        ex.spawn(async move {
            let answer = cmd::dispatch(&broker, kind, id, &body, turn).await;
            drop(body);
            // The slot travels with the response and the writer frees it (see `Out::Frame`).
            if let Some(frame) = answer {
                let _ = tx.send(Out::Frame(frame, Some(permit))).await;
            }
        })
        .detach();
        Ok(())
    }
}

/// Resolves when the broker begins shutting down.
async fn stop<F: Flash>(broker: &Broker<F>) -> Wake {
    loop {
        if broker.is_shutting_down() {
            return Wake::Stop;
        }
        let listener = broker.listen_shutdown();
        if broker.is_shutting_down() {
            return Wake::Stop;
        }
        listener.await;
    }
}

/// Writes queued responses, gathering small ones into one write, until every sender is gone
/// or a `Last` frame was written; then closes the write side. A write that does not complete
/// within `stall` closes the whole socket (which also ends the read loop).
async fn write_loop(mut stream: TcpStream, rx: Receiver<Out>, stall: Duration) {
    let mut batch: Vec<u8> = Vec::with_capacity(COALESCE_BYTES);
    let mut failed = false;
    'frames: while let Ok(first) = rx.recv().await {
        let mut next = Some(first);
        let mut last = false;
        while let Some(out) = next.take() {
            let frame = match out {
                Out::Frame(f, permit) => {
                    drop(permit);
                    f
                }
                Out::Last(f) => {
                    last = true;
                    f
                }
            };
            if frame.len() >= COALESCE_BYTES {
                if !write(&mut stream, &batch, stall).await
                    || !write(&mut stream, &frame, stall).await
                {
                    failed = true;
                    break 'frames;
                }
                batch.clear();
            } else {
                batch.extend_from_slice(&frame);
            }
            if last {
                break;
            }
            if batch.len() >= COALESCE_BYTES {
                if !write(&mut stream, &batch, stall).await {
                    failed = true;
                    break 'frames;
                }
                batch.clear();
            }
            next = rx.try_recv().ok();
        }
        if !write(&mut stream, &batch, stall).await {
            failed = true;
            break;
        }
        batch.clear();
        if last {
            break;
        }
    }
    // Refuse further responses (request tasks still running drop theirs).
    rx.close();
    let _ = stream.shutdown(if failed {
        Shutdown::Both
    } else {
        Shutdown::Write
    });
}

/// Writes all of `bytes`; false on error or when it took longer than `stall`.
async fn write(stream: &mut TcpStream, bytes: &[u8], stall: Duration) -> bool {
    if bytes.is_empty() {
        return true;
    }
    let all = async {
        match stream.write_all(bytes).await {
            Ok(()) => true,
            Err(e) => {
                log::debug!("broker: write failed: {e}");
                false
            }
        }
    };
    let timeout = async {
        Timer::after(stall).await;
        log::debug!("broker: a write did not complete within {stall:?}; closing");
        false
    };
    smol::future::or(all, timeout).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn read_buffer_grows_for_a_frame_and_shrinks_back() {
        let mut b = ReadBuf::new(16);
        b.spare()[..10].copy_from_slice(&[1; 10]);
        b.filled(10);
        b.reserve(40);
        assert_eq!(b.buf.len(), 40);
        let n = b.spare().len();
        b.spare().fill(2);
        b.filled(n);
        assert_eq!(b.data().len(), 40);
        b.consume(40);
        assert_eq!(b.buf.len(), 16);
        assert!(b.data().is_empty());
        // A partial frame left at the end moves to the front.
        b.spare()[..16].copy_from_slice(&[3; 16]);
        b.filled(16);
        b.consume(12);
        b.reserve(16);
        assert_eq!(b.data(), &[3; 4]);
        assert_eq!(b.start, 0);
        assert!(b.spare().len() >= 12);
    }
}
