//! outpost: a single-binary edge message broker.
//!
//! Layout (one folder per part of the architecture):
//! - [`storage`]: the crash-safe ring of fixed-size segments on a flash-like trait;
//! - [`config`]: config and board files (TOML through serde), resolved and validated;
//! - [`protocol`]: the native wire protocol, `no_std` and allocation-free;
//! - [`broker`]: the TCP server speaking it over the storage: topics, produce, fetch;
//! - [`forwarder`]: exactly-once forwarding of edge topics to Apache Kafka;
//! - [`groups`]: the consumer-group coordinator (a pure state machine) and offset entries;
//! - [`client`]: the async client of that protocol (used by the CLI, the tests and the bench);
//! - [`cli`]: the `outpost` command line.

#![cfg_attr(not(feature = "std"), no_std)]
#![forbid(unsafe_code)]

#[cfg(feature = "std")]
pub mod broker;
#[cfg(feature = "std")]
pub mod cli;
#[cfg(feature = "std")]
pub mod client;
#[cfg(feature = "std")]
pub mod config;
#[cfg(feature = "std")]
pub mod forwarder;
#[cfg(feature = "std")]
pub mod groups;
pub mod protocol;
#[cfg(feature = "std")]
pub mod storage;
