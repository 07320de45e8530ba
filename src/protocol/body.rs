//! Encoding whole frames and decoding bodies, into and from caller-provided buffers (no
//! allocation). A response body is the error code, then the payload (OK) or a message.

use crate::protocol::error_code::ErrorCode;
use crate::protocol::frame::{FrameHeader, HEADER_BYTES};
use serde::{Deserialize, Serialize};

/// Why a body could not be encoded or decoded.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum BodyError {
    /// The output buffer is too small for the frame.
    BufferTooSmall,
    /// The body does not decode as the kind's struct.
    Malformed(postcard::Error),
    /// Bytes were left after the body's struct.
    TrailingBytes,
    /// A response carried an error code this build does not know.
    UnknownCode(u16),
}

impl core::fmt::Display for BodyError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            BodyError::BufferTooSmall => write!(f, "frame does not fit in the buffer"),
            BodyError::Malformed(e) => write!(f, "body does not decode: {e}"),
            BodyError::TrailingBytes => write!(f, "body has trailing bytes"),
            BodyError::UnknownCode(c) => write!(f, "unknown error code {c}"),
        }
    }
}

fn finish(buf: &mut [u8], header: FrameHeader, body_len: usize) -> Result<usize, BodyError> {
    let mut h = header;
    h.body_bytes = u32::try_from(body_len).map_err(|_| BodyError::BufferTooSmall)?;
    buf[..HEADER_BYTES].copy_from_slice(&h.encode());
    Ok(HEADER_BYTES + body_len)
}

/// Writes a request frame (header and body) into `buf`; returns its length.
pub fn encode_request<T: Serialize>(
    buf: &mut [u8],
    kind: u8,
    request_id: u32,
    body: &T,
) -> Result<usize, BodyError> {
    if buf.len() < HEADER_BYTES {
        return Err(BodyError::BufferTooSmall);
    }
    let n = postcard::to_slice(body, &mut buf[HEADER_BYTES..])
        .map_err(|_| BodyError::BufferTooSmall)?
        .len();
    finish(buf, FrameHeader::request(kind, request_id, 0), n)
}

/// Writes an OK response frame carrying `body` into `buf`; returns its length.
pub fn encode_ok<T: Serialize>(
    buf: &mut [u8],
    kind: u8,
    request_id: u32,
    body: &T,
) -> Result<usize, BodyError> {
    if buf.len() < HEADER_BYTES {
        return Err(BodyError::BufferTooSmall);
    }
    let out = &mut buf[HEADER_BYTES..];
    let c = postcard::to_slice(&(ErrorCode::Ok as u16), out)
        .map_err(|_| BodyError::BufferTooSmall)?
        .len();
    let n = postcard::to_slice(body, &mut out[c..])
        .map_err(|_| BodyError::BufferTooSmall)?
        .len();
    finish(buf, FrameHeader::response(kind, request_id, 0), c + n)
}

/// Writes an error response frame into `buf`. The message is cut to fit the buffer (at a
/// character boundary) rather than failing.
pub fn encode_error(
    buf: &mut [u8],
    kind: u8,
    request_id: u32,
    code: ErrorCode,
    message: &str,
) -> Result<usize, BodyError> {
    if buf.len() < HEADER_BYTES + 8 {
        return Err(BodyError::BufferTooSmall);
    }
    let room = buf.len() - HEADER_BYTES - 8;
    let mut cut = message.len().min(room);
    while !message.is_char_boundary(cut) {
        cut -= 1;
    }
    let out = &mut buf[HEADER_BYTES..];
    let n = postcard::to_slice(&(code as u16, &message[..cut]), out)
        .map_err(|_| BodyError::BufferTooSmall)?
        .len();
    finish(buf, FrameHeader::response(kind, request_id, 0), n)
}

/// Decodes a request body exactly (trailing bytes are an error).
pub fn decode_request<'a, T: Deserialize<'a>>(body: &'a [u8]) -> Result<T, BodyError> {
    let (v, rest) = postcard::take_from_bytes::<T>(body).map_err(BodyError::Malformed)?;
    if !rest.is_empty() {
        return Err(BodyError::TrailingBytes);
    }
    Ok(v)
}

/// A decoded response body: the payload, or the server's error code and message.
#[derive(Clone, Copy, Debug)]
pub enum Response<'a, T> {
    Ok(T),
    Err { code: ErrorCode, message: &'a str },
}

/// Decodes a response body exactly.
pub fn decode_response<'a, T: Deserialize<'a>>(
    body: &'a [u8],
) -> Result<Response<'a, T>, BodyError> {
    let (code, rest) = postcard::take_from_bytes::<u16>(body).map_err(BodyError::Malformed)?;
    let code = ErrorCode::from_u16(code).ok_or(BodyError::UnknownCode(code))?;
    if code == ErrorCode::Ok {
        return decode_request::<T>(rest).map(Response::Ok);
    }
    let message: &'a str = decode_request(rest)?;
    Ok(Response::Err { code, message })
}
