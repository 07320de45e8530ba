//! Blocking frame I/O for device-side clients: `embedded-io` traits, a `heapless` buffer, no
//! allocation. The broker itself uses the same `frame::decode` on its async sockets.

use crate::protocol::frame::{self, Decoded, FrameError, FrameHeader, HEADER_BYTES};

/// Why a frame could not be read.
#[derive(Debug)]
pub enum ReadFrameError<E> {
    /// The transport failed.
    Io(E),
    /// The peer closed the connection (`partial` bytes of an unfinished frame were buffered).
    Eof { partial: usize },
    /// The bytes are not a frame (the connection cannot be resynchronised: close it).
    Frame(FrameError),
}

/// Reads frames of at most `N` bytes from a byte stream.
pub struct FrameReader<const N: usize> {
    buf: heapless::Vec<u8, N>,
    /// Bytes at the front of `buf` that belong to the frame returned last.
    consumed: usize,
}

impl<const N: usize> Default for FrameReader<N> {
    fn default() -> Self {
        // A buffer that cannot hold a frame header could never make progress.
        const {
            assert!(
                N >= HEADER_BYTES,
                "FrameReader<N> needs N >= 16 (the frame header)"
            )
        };
        FrameReader {
            buf: heapless::Vec::new(),
            consumed: 0,
        }
    }
}

impl<const N: usize> FrameReader<N> {
    pub fn new() -> Self {
        Self::default()
    }

    /// Reads until a whole frame is buffered; returns its header and body. The body borrows
    /// the reader's buffer until the next call.
    pub fn read_frame<R: embedded_io::Read>(
        &mut self,
        r: &mut R,
    ) -> Result<(FrameHeader, &[u8]), ReadFrameError<R::Error>> {
        // Drop the frame handed out last time.
        let len = self.buf.len();
        self.buf.copy_within(self.consumed..len, 0);
        self.buf.truncate(len - self.consumed);
        self.consumed = 0;
        let frame_bytes_max = u32::try_from(N).unwrap_or(u32::MAX);
        loop {
            match frame::decode(&self.buf, frame_bytes_max).map_err(ReadFrameError::Frame)? {
                Decoded::Frame { header, len } => {
                    self.consumed = len;
                    return Ok((header, &self.buf[HEADER_BYTES..len]));
                }
                Decoded::Incomplete { .. } => {
                    let old = self.buf.len();
                    // `decode` refused anything longer than N, so there is room to read into.
                    let _ = self.buf.resize(N, 0);
                    let n = match r.read(&mut self.buf[old..]) {
                        Ok(n) => n,
                        Err(e) => {
                            self.buf.truncate(old);
                            return Err(ReadFrameError::Io(e));
                        }
                    };
                    self.buf.truncate(old + n);
                    if n == 0 {
                        return Err(ReadFrameError::Eof { partial: old });
                    }
                }
            }
        }
    }
}

/// Writes one encoded frame and flushes.
pub fn write_frame<W: embedded_io::Write>(w: &mut W, frame: &[u8]) -> Result<(), W::Error> {
    w.write_all(frame)?;
    w.flush()
}
