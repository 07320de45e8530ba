//! outpost: a single-binary edge message broker.
//!
//! Layout (one folder per part of the architecture):
//! - [`storage`]: the crash-safe ring of fixed-size segments on a flash-like trait;
//! - [`config`]: config and board files (TOML through serde), resolved and validated;
//! - [`cli`]: the `outpost` command line.

#![forbid(unsafe_code)]

pub mod cli;
pub mod config;
pub mod storage;
