//! The upstream cluster as the forwarder sees it: the API versions it checked, the topics'
//! partition leaders, the brokers' addresses, and one lazily opened connection per broker.

use std::collections::HashMap;
use std::time::Duration;

use kafka_protocol::messages::{
    ApiKey, ApiVersionsRequest, BrokerId, DescribeConfigsRequest, FindCoordinatorRequest,
    MetadataRequest, TopicName, describe_configs_request::DescribeConfigsResource,
    metadata_request::MetadataRequestTopic,
};
use kafka_protocol::protocol::StrBytes;

use super::conn::Conn;
use super::error::{KafkaCode, KafkaError};

/// The versions outpost speaks (docs/FORWARDING.md section 7), by API.
pub mod version {
    pub const API_VERSIONS: i16 = 3;
    pub const METADATA: i16 = 12;
    pub const FIND_COORDINATOR: i16 = 4;
    pub const INIT_PRODUCER_ID: i16 = 4;
    pub const ADD_PARTITIONS_TO_TXN: i16 = 3;
    pub const PRODUCE: i16 = 9;
    pub const END_TXN: i16 = 3;
    pub const LIST_OFFSETS: i16 = 7;
    pub const FETCH: i16 = 12;
    pub const DESCRIBE_CONFIGS: i16 = 4;
}

const NEEDED: [(ApiKey, &str, i16); 9] = [
    (ApiKey::Metadata, "Metadata", version::METADATA),
    (
        ApiKey::FindCoordinator,
        "FindCoordinator",
        version::FIND_COORDINATOR,
    ),
    (
        ApiKey::InitProducerId,
        "InitProducerId",
        version::INIT_PRODUCER_ID,
    ),
    (
        ApiKey::AddPartitionsToTxn,
        "AddPartitionsToTxn",
        version::ADD_PARTITIONS_TO_TXN,
    ),
    (ApiKey::Produce, "Produce", version::PRODUCE),
    (ApiKey::EndTxn, "EndTxn", version::END_TXN),
    (ApiKey::ListOffsets, "ListOffsets", version::LIST_OFFSETS),
    (ApiKey::Fetch, "Fetch", version::FETCH),
    (
        ApiKey::DescribeConfigs,
        "DescribeConfigs",
        version::DESCRIBE_CONFIGS,
    ),
];

/// A topic's partitions: the leader node of each, by partition index.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TopicMeta {
    pub leaders: Vec<i32>,
}

impl TopicMeta {
    pub fn partitions(&self) -> u32 {
        u32::try_from(self.leaders.len()).unwrap_or(u32::MAX)
    }
}

pub struct Cluster {
    timeout: Duration,
    response_bytes_max: usize,
    /// Node id → `host:port`, from the last metadata.
    nodes: HashMap<i32, String>,
    conns: HashMap<i32, Conn>,
    /// The connection bootstrap succeeded on, used for metadata.
    bootstrap: Conn,
    topics: HashMap<String, TopicMeta>,
}

impl Cluster {
    /// Connects to the first bootstrap server that answers and checks it supports every API
    /// version outpost uses.
    pub fn bootstrap(
        servers: &[String],
        timeout: Duration,
        response_bytes_max: usize,
    ) -> Result<Cluster, KafkaError> {
        let mut last = None;
        for s in servers {
            match Conn::connect(s, timeout, response_bytes_max).and_then(|mut c| {
                check_versions(&mut c)?;
                Ok(c)
            }) {
                Ok(conn) => {
                    return Ok(Cluster {
                        timeout,
                        response_bytes_max,
                        nodes: HashMap::new(),
                        conns: HashMap::new(),
                        bootstrap: conn,
                        topics: HashMap::new(),
                    });
                }
                Err(e) => last = Some(e),
            }
        }
        Err(last.unwrap_or_else(|| KafkaError::Metadata("no bootstrap server configured".into())))
    }

    /// Reloads the brokers and the named topics' leaders. A topic that does not exist upstream
    /// is an error naming it: the forwarder never creates topics.
    pub fn refresh(&mut self, topics: &[String]) -> Result<(), KafkaError> {
        let req = MetadataRequest::default()
            .with_topics(Some(
                topics
                    .iter()
                    .map(|t| {
                        MetadataRequestTopic::default()
                            .with_name(Some(TopicName(StrBytes::from_string(t.clone()))))
                    })
                    .collect(),
            ))
            .with_allow_auto_topic_creation(false);
        let resp = self.bootstrap.call("Metadata", &req, version::METADATA)?;
        self.nodes.clear();
        for b in &resp.brokers {
            self.nodes
                .insert(b.node_id.0, format!("{}:{}", b.host.as_str(), b.port));
        }
        self.topics.clear();
        for t in &resp.topics {
            let name = t.name.as_ref().map(|n| n.0.to_string()).unwrap_or_default();
            let code = KafkaCode(t.error_code);
            if code.0 != 0 {
                let hint = if code.error()
                    == Some(kafka_protocol::ResponseError::UnknownTopicOrPartition)
                {
                    " — create it upstream (outpost never creates upstream topics)"
                } else {
                    ""
                };
                return Err(KafkaError::Metadata(format!(
                    "upstream topic {name:?}: {code}{hint}"
                )));
            }
            let mut leaders = vec![-1; t.partitions.len()];
            for p in &t.partitions {
                let i = usize::try_from(p.partition_index)
                    .ok()
                    .filter(|&i| i < leaders.len())
                    .ok_or_else(|| {
                        KafkaError::Metadata(format!(
                            "upstream topic {name:?} lists partition {} of {}",
                            p.partition_index,
                            leaders.len()
                        ))
                    })?;
                leaders[i] = p.leader_id.0;
            }
            self.topics.insert(name, TopicMeta { leaders });
        }
        for t in topics {
            if !self.topics.contains_key(t) {
                return Err(KafkaError::Metadata(format!(
                    "upstream topic {t:?} is missing from the metadata response"
                )));
            }
        }
        // Connections to brokers that moved are reopened on next use.
        let nodes = &self.nodes;
        self.conns
            .retain(|id, c| nodes.get(id).is_some_and(|a| a == c.addr()));
        Ok(())
    }

    pub fn topic(&self, name: &str) -> Option<&TopicMeta> {
        self.topics.get(name)
    }

    /// The leader of a partition, or an error saying there is none now.
    pub fn leader(&self, topic: &str, partition: i32) -> Result<i32, KafkaError> {
        let leader = self
            .topics
            .get(topic)
            .and_then(|t| t.leaders.get(usize::try_from(partition).ok()?))
            .copied()
            .unwrap_or(-1);
        if leader < 0 {
            return Err(KafkaError::Metadata(format!(
                "upstream partition {topic}/{partition} has no leader now"
            )));
        }
        Ok(leader)
    }

    /// The connection to a broker, opened on first use.
    pub fn conn(&mut self, node: i32) -> Result<&mut Conn, KafkaError> {
        if !self.conns.contains_key(&node) {
            let addr = self.nodes.get(&node).ok_or_else(|| {
                KafkaError::Metadata(format!("broker {node} is not in the cluster metadata"))
            })?;
            let c = Conn::connect(addr, self.timeout, self.response_bytes_max)?;
            self.conns.insert(node, c);
        }
        self.conns
            .get_mut(&node)
            .ok_or_else(|| KafkaError::Metadata(format!("broker {node}: no connection")))
    }

    /// The transaction coordinator of `transactional_id`: `Ok(None)` while the cluster says
    /// "not available yet" (retry).
    pub fn find_coordinator(&mut self, transactional_id: &str) -> Result<Option<i32>, KafkaError> {
        let req = FindCoordinatorRequest::default()
            .with_key_type(1)
            .with_coordinator_keys(vec![StrBytes::from_string(transactional_id.to_owned())]);
        let resp = self
            .bootstrap
            .call("FindCoordinator", &req, version::FIND_COORDINATOR)?;
        let c = resp
            .coordinators
            .first()
            .ok_or_else(|| KafkaError::Decode {
                addr: self.bootstrap.addr().to_owned(),
                api: "FindCoordinator",
                detail: "no coordinator in the response".into(),
            })?;
        let code = KafkaCode(c.error_code);
        if code.0 != 0 {
            if retriable(code) {
                return Ok(None);
            }
            return Err(KafkaError::Api {
                api: "FindCoordinator",
                what: format!("for transactional id {transactional_id:?}"),
                code,
                message: c.error_message.as_ref().map(|m| m.to_string()),
            });
        }
        let BrokerId(node) = c.node_id;
        self.nodes
            .insert(node, format!("{}:{}", c.host.as_str(), c.port));
        Ok(Some(node))
    }

    /// The values of `keys` in a topic's configuration (`None`: no value).
    pub fn topic_configs(
        &mut self,
        topic: &str,
        keys: &[&str],
    ) -> Result<Vec<(String, Option<String>)>, KafkaError> {
        const TOPIC: i8 = 2;
        let req = DescribeConfigsRequest::default().with_resources(vec![
            DescribeConfigsResource::default()
                .with_resource_type(TOPIC)
                .with_resource_name(StrBytes::from_string(topic.to_owned()))
                .with_configuration_keys(Some(
                    keys.iter()
                        .map(|k| StrBytes::from_string((*k).to_owned()))
                        .collect(),
                )),
        ]);
        let resp = self
            .bootstrap
            .call("DescribeConfigs", &req, version::DESCRIBE_CONFIGS)?;
        let r = resp.results.first().ok_or_else(|| KafkaError::Decode {
            addr: self.bootstrap.addr().to_owned(),
            api: "DescribeConfigs",
            detail: "no result in the response".into(),
        })?;
        if r.error_code != 0 {
            return Err(KafkaError::Api {
                api: "DescribeConfigs",
                what: format!("of topic {topic:?}"),
                code: KafkaCode(r.error_code),
                message: r.error_message.as_ref().map(|m| m.to_string()),
            });
        }
        Ok(r.configs
            .iter()
            .map(|c| (c.name.to_string(), c.value.as_ref().map(|v| v.to_string())))
            .collect())
    }

    /// Drops the connection to a node (after an error on it).
    pub fn forget(&mut self, node: i32) {
        self.conns.remove(&node);
    }
}

/// Codes that mean "the cluster is settling, ask again shortly".
pub fn retriable(code: KafkaCode) -> bool {
    use kafka_protocol::ResponseError as E;
    matches!(
        code.error(),
        Some(
            E::CoordinatorNotAvailable
                | E::CoordinatorLoadInProgress
                | E::NotCoordinator
                | E::ConcurrentTransactions
                | E::LeaderNotAvailable
                | E::NotLeaderOrFollower
                | E::RequestTimedOut
                | E::NetworkException
                | E::UnknownTopicOrPartition
        )
    )
}

fn check_versions(c: &mut Conn) -> Result<(), KafkaError> {
    let req = ApiVersionsRequest::default()
        .with_client_software_name(StrBytes::from_static_str("outpost"))
        .with_client_software_version(StrBytes::from_static_str(env!("CARGO_PKG_VERSION")));
    let resp = c.call("ApiVersions", &req, version::API_VERSIONS)?;
    if resp.error_code != 0 {
        return Err(KafkaError::Api {
            api: "ApiVersions",
            what: String::new(),
            code: KafkaCode(resp.error_code),
            message: None,
        });
    }
    for (key, name, v) in NEEDED {
        let k = key as i16;
        let range = resp.api_keys.iter().find(|a| a.api_key == k);
        let ok = range.is_some_and(|a| a.min_version <= v && v <= a.max_version);
        if !ok {
            let (lo, hi) = range.map_or((-1, -1), |a| (a.min_version, a.max_version));
            return Err(KafkaError::Unsupported {
                addr: c.addr().to_owned(),
                api: name,
                version: v,
                broker_min: lo,
                broker_max: hi,
            });
        }
    }
    Ok(())
}
