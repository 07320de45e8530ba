//! The forwarder's settings (`[forwarder]` in the config file, documented key by key in
//! `config/outpost.toml`), validated before the broker starts.

use std::fmt;

use crate::broker::topics::{check_name, is_name};

/// How an edge partition's records are spread over the upstream topic's partitions.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Partitioning {
    /// Edge partition `p` → upstream partition `p` (the upstream topic needs at least as many).
    Same,
    /// Kafka's default partitioner on the record key; keyless records go to `p mod n`.
    KeyHash,
}

impl fmt::Display for Partitioning {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Partitioning::Same => "same",
            Partitioning::KeyHash => "key-hash",
        })
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Route {
    pub edge_topic: String,
    pub upstream_topic: String,
    pub partitioning: Partitioning,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ForwarderConfig {
    /// `host:port` of one or more Kafka brokers, tried in order.
    pub bootstrap_servers: Vec<String>,
    /// Names this gateway upstream: origin headers and cursor keys.
    pub gateway_id: String,
    /// Kafka's `transactional.id`; stable per gateway (default `outpost-<gateway_id>`).
    pub transactional_id: String,
    /// The compacted upstream topic holding the cursors.
    pub cursor_topic: String,
    pub routes: Vec<Route>,
    /// Most record bytes (edge encoding) in one upstream transaction.
    pub batch_bytes_max: u64,
    /// Largest Kafka record batch sent to one upstream partition (Kafka refuses batches over
    /// the topic's `max.message.bytes`, 1 MiB by default): larger runs go in several.
    pub upstream_batch_bytes_max: u64,
    /// How long a transaction waits for more records when less than `batch_bytes_max` waits.
    pub linger_ms: u64,
    pub retry_ms_min: u64,
    pub retry_ms_max: u64,
    /// Deadline of one Kafka request (connect, send, answer).
    pub request_timeout_ms: u64,
    /// Kafka's `transaction.timeout.ms` for our transactions.
    pub transaction_timeout_ms: u64,
    /// Largest Kafka response accepted (checked before it is allocated).
    pub response_bytes_max: u64,
}

/// Defaults (docs in `config/outpost.toml`).
pub const CURSOR_TOPIC_DEFAULT: &str = "outpost-cursors";
pub const BATCH_BYTES_MAX_DEFAULT: u64 = 1 << 20;
pub const LINGER_MS_DEFAULT: u64 = 20;
pub const UPSTREAM_BATCH_BYTES_MAX_DEFAULT: u64 = 512 << 10;
pub const RETRY_MS_MIN_DEFAULT: u64 = 100;
pub const RETRY_MS_MAX_DEFAULT: u64 = 30_000;
pub const REQUEST_TIMEOUT_MS_DEFAULT: u64 = 30_000;
pub const TRANSACTION_TIMEOUT_MS_DEFAULT: u64 = 60_000;
pub const RESPONSE_BYTES_MAX_DEFAULT: u64 = 8 << 20;

/// Bounds that keep one transaction and one response inside a gateway's RAM.
pub const BATCH_BYTES_MAX_LIMIT: u64 = 64 << 20;
pub const GATEWAY_ID_BYTES_MAX: usize = 64;

/// A key whose value is wrong, and why.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Invalid {
    pub key: String,
    pub reason: String,
}

fn invalid(key: impl Into<String>, reason: impl Into<String>) -> Invalid {
    Invalid {
        key: key.into(),
        reason: reason.into(),
    }
}

/// Gateway ids go into cursor keys (`GATEWAY/TOPIC/PARTITION`) and headers: no `/`.
pub fn check_gateway_id(id: &str) -> Result<(), &'static str> {
    if id.is_empty() || id.len() > GATEWAY_ID_BYTES_MAX {
        return Err("a gateway id is 1 to 64 bytes");
    }
    if !is_name(id) {
        return Err("a gateway id may only contain ASCII letters, digits, '.', '_' and '-'");
    }
    Ok(())
}

impl ForwarderConfig {
    /// The route of an edge topic, if it is forwarded.
    pub fn route(&self, edge_topic: &str) -> Option<&Route> {
        self.routes.iter().find(|r| r.edge_topic == edge_topic)
    }

    /// RAM one transaction can hold at once: the records read from the ring, their Kafka
    /// encoding, and one response buffer.
    pub fn ram_bytes_estimate(&self) -> u64 {
        self.batch_bytes_max
            .saturating_mul(3)
            .saturating_add(self.response_bytes_max)
    }

    pub fn validate(&self) -> Result<(), Invalid> {
        if self.bootstrap_servers.is_empty() {
            return Err(invalid(
                "bootstrap_servers",
                "at least one \"host:port\" is needed",
            ));
        }
        for s in &self.bootstrap_servers {
            let ok = s
                .rsplit_once(':')
                .is_some_and(|(h, p)| !h.is_empty() && p.parse::<u16>().is_ok_and(|p| p > 0));
            if !ok {
                return Err(invalid(
                    "bootstrap_servers",
                    format!("{s:?} is not \"host:port\""),
                ));
            }
        }
        check_gateway_id(&self.gateway_id).map_err(|r| invalid("gateway_id", r))?;
        if self.transactional_id.is_empty() || self.transactional_id.len() > 249 {
            return Err(invalid("transactional_id", "1 to 249 bytes"));
        }
        check_name(&self.cursor_topic).map_err(|r| invalid("cursor_topic", r))?;
        if self.routes.is_empty() {
            return Err(invalid(
                "route",
                "a [forwarder] section needs at least one [[forwarder.route]]",
            ));
        }
        for (i, r) in self.routes.iter().enumerate() {
            let key = |k: &str| format!("route[{i}].{k}");
            check_name(&r.edge_topic).map_err(|m| invalid(key("edge_topic"), m))?;
            check_name(&r.upstream_topic).map_err(|m| invalid(key("upstream_topic"), m))?;
            if r.upstream_topic == self.cursor_topic {
                return Err(invalid(
                    key("upstream_topic"),
                    "the cursor topic cannot receive forwarded records",
                ));
            }
            if self.routes[..i]
                .iter()
                .any(|o| o.edge_topic == r.edge_topic)
            {
                return Err(invalid(
                    key("edge_topic"),
                    format!("{:?} has two routes", r.edge_topic),
                ));
            }
        }
        if !(1024..=BATCH_BYTES_MAX_LIMIT).contains(&self.batch_bytes_max) {
            return Err(invalid("batch_bytes_max", "between 1 KiB and 64 MiB"));
        }
        if !(1024..=BATCH_BYTES_MAX_LIMIT).contains(&self.upstream_batch_bytes_max) {
            return Err(invalid(
                "upstream_batch_bytes_max",
                "between 1 KiB and 64 MiB (and at most the upstream topics' max.message.bytes)",
            ));
        }
        if self.linger_ms > 60_000 {
            return Err(invalid("linger_ms", "at most 60000"));
        }
        if self.retry_ms_min == 0 || self.retry_ms_min > self.retry_ms_max {
            return Err(invalid(
                "retry_ms_min",
                format!(
                    "must be at least 1 and at most retry_ms_max ({})",
                    self.retry_ms_max
                ),
            ));
        }
        if self.retry_ms_max > 3_600_000 {
            return Err(invalid("retry_ms_max", "at most 3600000 (one hour)"));
        }
        if !(100..=600_000).contains(&self.request_timeout_ms) {
            return Err(invalid("request_timeout_ms", "between 100 and 600000"));
        }
        if self.transaction_timeout_ms < self.request_timeout_ms
            || self.transaction_timeout_ms > 900_000
        {
            return Err(invalid(
                "transaction_timeout_ms",
                format!(
                    "between request_timeout_ms ({}) and 900000 (Kafka's default \
                     transaction.max.timeout.ms)",
                    self.request_timeout_ms
                ),
            ));
        }
        // A response carries at most one transaction's worth of records (cursor reads) plus
        // Kafka's framing.
        let floor = self.batch_bytes_max.saturating_add(64 << 10);
        if self.response_bytes_max < floor || self.response_bytes_max > (256 << 20) {
            return Err(invalid(
                "response_bytes_max",
                format!("between batch_bytes_max + 64 KiB ({floor}) and 256 MiB"),
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    pub(crate) fn sample() -> ForwarderConfig {
        ForwarderConfig {
            bootstrap_servers: vec!["127.0.0.1:9092".into()],
            gateway_id: "gw-1".into(),
            transactional_id: "outpost-gw-1".into(),
            cursor_topic: CURSOR_TOPIC_DEFAULT.into(),
            routes: vec![Route {
                edge_topic: "t".into(),
                upstream_topic: "up".into(),
                partitioning: Partitioning::Same,
            }],
            batch_bytes_max: BATCH_BYTES_MAX_DEFAULT,
            upstream_batch_bytes_max: UPSTREAM_BATCH_BYTES_MAX_DEFAULT,
            linger_ms: LINGER_MS_DEFAULT,
            retry_ms_min: RETRY_MS_MIN_DEFAULT,
            retry_ms_max: RETRY_MS_MAX_DEFAULT,
            request_timeout_ms: REQUEST_TIMEOUT_MS_DEFAULT,
            transaction_timeout_ms: TRANSACTION_TIMEOUT_MS_DEFAULT,
            response_bytes_max: RESPONSE_BYTES_MAX_DEFAULT,
        }
    }

    #[test]
    fn defaults_validate() {
        assert_eq!(sample().validate(), Ok(()));
    }

    #[test]
    fn bad_values_name_their_key() {
        type Edit = Box<dyn Fn(&mut ForwarderConfig)>;
        let cases: Vec<(&str, Edit)> = vec![
            (
                "bootstrap_servers",
                Box::new(|c| c.bootstrap_servers.clear()),
            ),
            (
                "bootstrap_servers",
                Box::new(|c| c.bootstrap_servers = vec!["nohost".into()]),
            ),
            ("gateway_id", Box::new(|c| c.gateway_id = "a/b".into())),
            ("cursor_topic", Box::new(|c| c.cursor_topic = "".into())),
            ("route", Box::new(|c| c.routes.clear())),
            (
                "route[1].edge_topic",
                Box::new(|c| {
                    let r = c.routes[0].clone();
                    c.routes.push(r)
                }),
            ),
            (
                "route[0].upstream_topic",
                Box::new(|c| c.routes[0].upstream_topic = c.cursor_topic.clone()),
            ),
            ("batch_bytes_max", Box::new(|c| c.batch_bytes_max = 10)),
            (
                "upstream_batch_bytes_max",
                Box::new(|c| c.upstream_batch_bytes_max = 10),
            ),
            ("retry_ms_min", Box::new(|c| c.retry_ms_min = 0)),
            (
                "retry_ms_min",
                Box::new(|c| c.retry_ms_min = c.retry_ms_max + 1),
            ),
            ("request_timeout_ms", Box::new(|c| c.request_timeout_ms = 5)),
            (
                "transaction_timeout_ms",
                Box::new(|c| c.transaction_timeout_ms = 1000),
            ),
            (
                "response_bytes_max",
                Box::new(|c| c.response_bytes_max = c.batch_bytes_max),
            ),
        ];
        for (key, edit) in cases {
            let mut c = sample();
            edit(&mut c);
            let e = c.validate().expect_err(key);
            assert_eq!(e.key, key, "{e:?}");
        }
    }
}
