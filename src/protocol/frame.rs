//! The 16-byte frame header and the sans-io frame decoder (docs/PROTOCOL.md section 1).
//!
//! `decode` is pure: it looks at the bytes buffered so far and says "incomplete", "invalid"
//! (with the error to send before closing) or "a frame of N bytes". It never allocates and
//! checks the length against `frame_bytes_max` before the body is even buffered.

use crate::protocol::VERSION;
use crate::protocol::error_code::ErrorCode;
use crc::{CRC_32_ISCSI, Crc, Table};

/// CRC-32C, the same function as the storage format.
const CRC32C: Crc<u32, Table<16>> = Crc::<u32, Table<16>>::new(&CRC_32_ISCSI);

/// Bytes of the frame header.
pub const HEADER_BYTES: usize = 16;
/// Flag bit set on every frame the server sends.
pub const FLAG_RESPONSE: u16 = 1;
const FLAGS_KNOWN: u16 = FLAG_RESPONSE;

/// A decoded, CRC-checked frame header. `kind` is the raw number: an unknown kind is still a
/// well-delimited frame (answered with `UNKNOWN_KIND`), not a framing error.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FrameHeader {
    pub body_bytes: u32,
    pub version: u8,
    pub kind: u8,
    pub flags: u16,
    pub request_id: u32,
}

impl FrameHeader {
    pub fn request(kind: u8, request_id: u32, body_bytes: u32) -> FrameHeader {
        FrameHeader {
            body_bytes,
            version: VERSION,
            kind,
            flags: 0,
            request_id,
        }
    }

    pub fn response(kind: u8, request_id: u32, body_bytes: u32) -> FrameHeader {
        FrameHeader {
            flags: FLAG_RESPONSE,
            ..FrameHeader::request(kind, request_id, body_bytes)
        }
    }

    pub fn is_response(&self) -> bool {
        self.flags & FLAG_RESPONSE != 0
    }

    /// Total frame size, header included.
    pub fn frame_bytes(&self) -> u64 {
        HEADER_BYTES as u64 + u64::from(self.body_bytes)
    }

    pub fn encode(&self) -> [u8; HEADER_BYTES] {
        let mut b = [0u8; HEADER_BYTES];
        b[0..4].copy_from_slice(&self.body_bytes.to_le_bytes());
        b[4] = self.version;
        b[5] = self.kind;
        b[6..8].copy_from_slice(&self.flags.to_le_bytes());
        b[8..12].copy_from_slice(&self.request_id.to_le_bytes());
        let crc = CRC32C.checksum(&b[0..12]);
        b[12..16].copy_from_slice(&crc.to_le_bytes());
        b
    }
}

/// Why buffered bytes are not a frame. The server sends `code()` in a GOODBYE and closes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FrameError {
    HeaderCrc,
    ReservedFlags {
        flags: u16,
        request_id: u32,
    },
    TooLarge {
        frame_bytes: u64,
        frame_bytes_max: u32,
        request_id: u32,
    },
}

impl FrameError {
    pub fn code(&self) -> ErrorCode {
        match self {
            FrameError::HeaderCrc => ErrorCode::HeaderCrc,
            FrameError::ReservedFlags { .. } => ErrorCode::Malformed,
            FrameError::TooLarge { .. } => ErrorCode::FrameTooLarge,
        }
    }

    /// The id to put in the GOODBYE: the offending frame's, when its header was intact.
    pub fn request_id(&self) -> u32 {
        match self {
            FrameError::HeaderCrc => 0,
            FrameError::ReservedFlags { request_id, .. }
            | FrameError::TooLarge { request_id, .. } => *request_id,
        }
    }
}

impl core::fmt::Display for FrameError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            FrameError::HeaderCrc => write!(f, "frame header CRC mismatch"),
            FrameError::ReservedFlags { flags, .. } => {
                write!(f, "reserved frame flag bits set ({flags:#06x})")
            }
            FrameError::TooLarge {
                frame_bytes,
                frame_bytes_max,
                ..
            } => write!(
                f,
                "frame of {frame_bytes} bytes exceeds frame_bytes_max ({frame_bytes_max})"
            ),
        }
    }
}

/// The outcome of looking at buffered bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Decoded {
    /// More bytes are needed; at least this many in total (header, or header plus body).
    Incomplete { needed: usize },
    /// A whole frame: its header and its length (`HEADER_BYTES + body_bytes`); the body is
    /// `buf[HEADER_BYTES..len]`.
    Frame { header: FrameHeader, len: usize },
}

/// Looks at the start of `buf` (the rules of docs/PROTOCOL.md section 1, in order).
pub fn decode(buf: &[u8], frame_bytes_max: u32) -> Result<Decoded, FrameError> {
    if buf.len() < HEADER_BYTES {
        return Ok(Decoded::Incomplete {
            needed: HEADER_BYTES,
        });
    }
    let h = &buf[..HEADER_BYTES];
    let crc = u32::from_le_bytes([h[12], h[13], h[14], h[15]]);
    if CRC32C.checksum(&h[0..12]) != crc {
        return Err(FrameError::HeaderCrc);
    }
    let header = FrameHeader {
        body_bytes: u32::from_le_bytes([h[0], h[1], h[2], h[3]]),
        version: h[4],
        kind: h[5],
        flags: u16::from_le_bytes([h[6], h[7]]),
        request_id: u32::from_le_bytes([h[8], h[9], h[10], h[11]]),
    };
    if header.flags & !FLAGS_KNOWN != 0 {
        return Err(FrameError::ReservedFlags {
            flags: header.flags,
            request_id: header.request_id,
        });
    }
    if header.frame_bytes() > u64::from(frame_bytes_max) {
        return Err(FrameError::TooLarge {
            frame_bytes: header.frame_bytes(),
            frame_bytes_max,
            request_id: header.request_id,
        });
    }
    // Fits in usize on 32- and 64-bit targets: bounded by frame_bytes_max (a u32) just above.
    let len = header.frame_bytes() as usize;
    if buf.len() < len {
        return Ok(Decoded::Incomplete { needed: len });
    }
    Ok(Decoded::Frame { header, len })
}
