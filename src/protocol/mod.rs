//! The native wire protocol (docs/PROTOCOL.md): frames, kinds, error codes and bodies.
//!
//! Sans-io and allocation-free: bytes in, frames out; bodies borrow from the input buffer.
//! This module builds without `std` (`cargo build --lib --no-default-features`) so a
//! device-side client can reuse it.

pub mod body;
pub mod error_code;
pub mod frame;
pub mod io;
pub mod kind;
pub mod messages;
pub mod murmur2;
pub mod seq;

pub use error_code::ErrorCode;
pub use frame::{FrameError, FrameHeader, HEADER_BYTES};
pub use kind::Kind;
pub use seq::Seq;

/// The protocol version this build speaks (and the only one so far).
pub const VERSION: u8 = 1;
/// The port `outpost serve` listens on by default.
pub const DEFAULT_PORT: u16 = 7478;
