//! Sequential, validating scan of one segment through a bounded buffer. Used by recovery, by
//! fsck and by reads. It never allocates more than `max(read_chunk_bytes, largest batch)`.

use super::error::ScanStop;
use super::flash::{Flash, FlashError};
use super::format::{BATCH_HEADER_BYTES, BatchError, BatchHeader, align_up};
use super::types::SegmentSeq;

/// Scans the batches of segment `seq` (in slot `slot`) from `pos` up to `limit`.
pub struct Scanner<'f, F: Flash + ?Sized> {
    flash: &'f F,
    seq: SegmentSeq,
    base: u64,
    pub pos: u64,
    limit: u64,
    unit: u64,
    body_bytes_max: u64,
    chunk_bytes: u64,
    buf: Vec<u8>,
    /// Segment position of `buf[0]`.
    buf_pos: u64,
}

/// One valid batch found by the scan.
pub struct Found<'b> {
    pub pos: u64,
    pub header: BatchHeader,
    /// The body, when it was asked for (and then its CRC was checked).
    pub body: Option<&'b [u8]>,
}

impl<'f, F: Flash + ?Sized> Scanner<'f, F> {
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        flash: &'f F,
        seq: SegmentSeq,
        slot_base: u64,
        pos: u64,
        limit: u64,
        unit: u64,
        body_bytes_max: u64,
        chunk_bytes: u64,
    ) -> Scanner<'f, F> {
        Scanner {
            flash,
            seq,
            base: slot_base,
            pos,
            limit,
            unit,
            body_bytes_max,
            chunk_bytes,
            buf: Vec::new(),
            buf_pos: 0,
        }
    }

    /// Makes `[at, at + len)` (inside the limit) available in the buffer; returns its index.
    fn fill(&mut self, at: u64, len: u64) -> Result<usize, FlashError> {
        let have = self.buf_pos <= at && at + len <= self.buf_pos + self.buf.len() as u64;
        if !have {
            let want = len.max(self.chunk_bytes).min(self.limit - at);
            self.buf.resize(want as usize, 0);
            self.flash.read(self.base + at, &mut self.buf)?;
            self.buf_pos = at;
        }
        Ok((at - self.buf_pos) as usize)
    }

    /// The next valid batch, or why the scan stops here (`Ok(Err(stop))`; `self.pos` is then
    /// the position of the offending bytes). `want_body` decides from the (already validated)
    /// header whether the body is read and checked; skipped bodies are not validated.
    pub fn next(
        &mut self,
        want_body: impl FnOnce(&BatchHeader) -> bool,
    ) -> Result<Result<Found<'_>, ScanStop>, FlashError> {
        let pos = self.pos;
        if pos + BATCH_HEADER_BYTES as u64 > self.limit {
            return Ok(Err(ScanStop::End));
        }
        let i = self.fill(pos, BATCH_HEADER_BYTES as u64)?;
        let header = match BatchHeader::decode(
            &self.buf[i..i + BATCH_HEADER_BYTES],
            self.seq,
            self.body_bytes_max,
        ) {
            Ok(h) => h,
            Err(e) => return Ok(Err(ScanStop::Invalid(e))),
        };
        let total = header.total_bytes();
        if pos + total > self.limit {
            return Ok(Err(ScanStop::Invalid(BatchError::Truncated)));
        }
        let mut next = pos + total;
        if header.last_in_group() {
            next = align_up(next, self.unit).min(self.limit);
        }
        if !want_body(&header) {
            self.pos = next;
            return Ok(Ok(Found {
                pos,
                header,
                body: None,
            }));
        }
        let i = self.fill(pos, total)?;
        let body = &self.buf[i + BATCH_HEADER_BYTES..i + total as usize];
        if let Err(e) = header.check_body(self.seq, body) {
            return Ok(Err(ScanStop::Invalid(e)));
        }
        self.pos = next;
        Ok(Ok(Found {
            pos,
            header,
            body: Some(body),
        }))
    }
}
