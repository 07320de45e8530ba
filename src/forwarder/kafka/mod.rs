//! The Kafka client side the forwarder needs, and nothing more: blocking connections
//! ([`conn`]), cluster metadata ([`cluster`]), the transactional producer ([`txn`]) and the
//! read_committed reader ([`fetch`]). Every message is encoded and decoded by the
//! `kafka-protocol` crate; this module adds framing, correlation, timeouts and limits.

pub mod cluster;
pub mod conn;
pub mod error;
pub mod fetch;
pub mod txn;

pub use cluster::Cluster;
pub use error::{KafkaCode, KafkaError};
pub use txn::TxnProducer;
