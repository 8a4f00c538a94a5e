//! Talking to the cluster before the load starts: ApiVersions negotiation, topic
//! creation, and finding the leader of every partition through Metadata.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use kafka_protocol::error::ParseResponseErrorCode;
use kafka_protocol::messages::create_topics_request::{CreatableTopic, CreatableTopicConfig};
use kafka_protocol::messages::metadata_request::MetadataRequestTopic;
use kafka_protocol::messages::{
    ApiKey, ApiVersionsRequest, ApiVersionsResponse, CreateTopicsRequest, MetadataRequest,
    TopicName,
};
use kafka_protocol::protocol::StrBytes;

use crate::client::{call, connect};

/// An API version range we can speak, intersected with what the broker advertises.
struct Wanted {
    key: ApiKey,
    min: i16,
    max: i16,
}

/// Versions we speak. Produce stops at 11 and Fetch at 12: later versions address
/// topics by id (Produce 13, Fetch 13+) or only change transaction semantics.
const PRODUCE: Wanted = Wanted {
    key: ApiKey::Produce,
    min: 3,
    max: 11,
};
const FETCH: Wanted = Wanted {
    key: ApiKey::Fetch,
    min: 4,
    max: 12,
};
const METADATA: Wanted = Wanted {
    key: ApiKey::Metadata,
    min: 1,
    max: 12,
};
const CREATE_TOPICS: Wanted = Wanted {
    key: ApiKey::CreateTopics,
    min: 2,
    max: 7,
};

/// The request versions negotiated with the broker.
#[derive(Debug, Clone, Copy)]
pub struct Versions {
    pub produce: i16,
    pub fetch: i16,
    pub metadata: i16,
    /// `None` when the broker does not advertise CreateTopics in a usable range.
    pub create_topics: Option<i16>,
}

/// Sends ApiVersions (v3, falling back to v0 as Kafka clients do) and picks, for each
/// API we use, the highest version both sides support.
pub async fn negotiate(bootstrap: &str) -> Result<Versions> {
    let response = match api_versions(bootstrap, 3).await {
        Ok(r) if r.error_code.is_ok() => r,
        _ => api_versions(bootstrap, 0).await.context("ApiVersions v0")?,
    };
    if let Some(err) = response.error_code.err() {
        bail!("ApiVersions failed: {err:?}");
    }
    let pick = |w: &Wanted| -> Option<i16> {
        let advertised = response
            .api_keys
            .iter()
            .find(|k| k.api_key == w.key as i16)?;
        let version = advertised.max_version.min(w.max);
        (version >= advertised.min_version.max(w.min)).then_some(version)
    };
    let need = |w: &Wanted| {
        pick(w).with_context(|| {
            format!(
                "broker advertises no usable {:?} version (we speak {}-{})",
                w.key, w.min, w.max
            )
        })
    };
    Ok(Versions {
        produce: need(&PRODUCE)?,
        fetch: need(&FETCH)?,
        metadata: need(&METADATA)?,
        create_topics: pick(&CREATE_TOPICS),
    })
}

async fn api_versions(bootstrap: &str, version: i16) -> Result<ApiVersionsResponse> {
    let (mut tx, mut rx) = connect(bootstrap).await?;
    let req = ApiVersionsRequest::default()
        .with_client_software_name(StrBytes::from_static_str("fjord-bench"))
        .with_client_software_version(StrBytes::from_static_str(env!("CARGO_PKG_VERSION")));
    call(&mut tx, &mut rx, &req, version).await
}

/// How `create_topic` creates a topic: its replication factor and topic configs.
#[derive(Debug, Clone)]
pub struct NewTopic {
    pub replication_factor: i16,
    /// `key=value` topic configs, e.g. `min.insync.replicas=2`.
    pub configs: Vec<(String, String)>,
}

impl Default for NewTopic {
    fn default() -> Self {
        Self {
            replication_factor: 1,
            configs: Vec::new(),
        }
    }
}

/// Creates `topic` with `partitions` partitions as `spec` says, waiting up to
/// `timeout` for the answer. An existing topic is fine. Without CreateTopics,
/// relies on Metadata auto-creation.
pub async fn create_topic(
    bootstrap: &str,
    versions: &Versions,
    topic: &str,
    partitions: i32,
    spec: &NewTopic,
    timeout: Duration,
) -> Result<()> {
    let Some(version) = versions.create_topics else {
        eprintln!("broker does not advertise CreateTopics; relying on auto-creation");
        return Ok(());
    };
    let (mut tx, mut rx) = connect(bootstrap).await?;
    let configs = spec
        .configs
        .iter()
        .map(|(k, v)| {
            CreatableTopicConfig::default()
                .with_name(StrBytes::from_string(k.clone()))
                .with_value(Some(StrBytes::from_string(v.clone())))
        })
        .collect();
    let req = CreateTopicsRequest::default()
        .with_timeout_ms(i32::try_from(timeout.as_millis()).unwrap_or(i32::MAX))
        .with_topics(vec![CreatableTopic::default()
            .with_name(topic_name(topic))
            .with_num_partitions(partitions)
            .with_replication_factor(spec.replication_factor)
            .with_configs(configs)]);
    let correlation_id = tx.send(&req, version).await?;
    let response = rx
        .recv_within::<CreateTopicsRequest>(correlation_id, version, timeout)
        .await?;
    for result in &response.topics {
        match result.error_code.err() {
            None => {}
            Some(kafka_protocol::error::ResponseError::TopicAlreadyExists) => {
                eprintln!("topic {topic} already exists; reusing it");
            }
            Some(err) => bail!(
                "CreateTopics {topic}: {err:?} {}",
                result.error_message.as_deref().unwrap_or("")
            ),
        }
    }
    Ok(())
}

/// Where the partitions of a topic live.
#[derive(Debug, Clone)]
pub struct TopicLayout {
    /// `host:port` of each leader broker -> the partitions it leads, sorted.
    pub leaders: BTreeMap<String, Vec<i32>>,
}

impl TopicLayout {
    /// Keeps the partitions for which `keep` holds (and the leaders left with some).
    pub fn retain(&mut self, keep: impl Fn(i32) -> bool) {
        for partitions in self.leaders.values_mut() {
            partitions.retain(|p| keep(*p));
        }
        self.leaders.retain(|_, partitions| !partitions.is_empty());
    }

    /// The one broker leading every partition, and those partitions; an error when
    /// several brokers lead them (fetch, e2e and probe talk to one broker only).
    pub fn single_leader(&self) -> Result<(&str, &[i32])> {
        match self.leaders.iter().next() {
            Some((addr, partitions)) if self.leaders.len() == 1 => Ok((addr, partitions)),
            _ => bail!(
                "partitions are led by {} brokers ({:?}); this command supports one",
                self.leaders.len(),
                self.leaders.keys().collect::<Vec<_>>()
            ),
        }
    }
}

/// Polls Metadata (up to `timeout`) until `topic` has at least `partitions_min` partitions,
/// each with a leader that Metadata lists among its brokers. Metadata may auto-create
/// the topic only when `auto_create` is set.
pub async fn wait_for_topic(
    bootstrap: &str,
    versions: &Versions,
    topic: &str,
    partitions_min: i32,
    auto_create: bool,
    timeout: Duration,
) -> Result<TopicLayout> {
    let deadline = Instant::now() + timeout;
    let (mut tx, mut rx) = connect(bootstrap).await?;
    loop {
        let req = MetadataRequest::default()
            .with_topics(Some(vec![
                MetadataRequestTopic::default().with_name(Some(topic_name(topic)))
            ]))
            .with_allow_auto_topic_creation(auto_create);
        let response = call(&mut tx, &mut rx, &req, versions.metadata).await?;
        let layout = (|| -> Option<TopicLayout> {
            let t = response
                .topics
                .iter()
                .find(|t| t.name.as_deref().map(|n| n.as_str()) == Some(topic))?;
            if t.error_code.is_err() || t.partitions.len() < usize::try_from(partitions_min).ok()? {
                return None;
            }
            let mut leaders: BTreeMap<String, Vec<i32>> = BTreeMap::new();
            for p in &t.partitions {
                if p.error_code.is_err() || p.leader_id.0 < 0 {
                    return None;
                }
                let broker = response.brokers.iter().find(|b| b.node_id == p.leader_id)?;
                leaders
                    .entry(format!("{}:{}", broker.host.as_str(), broker.port))
                    .or_default()
                    .push(p.partition_index);
            }
            for partitions in leaders.values_mut() {
                partitions.sort_unstable();
            }
            Some(TopicLayout { leaders })
        })();
        if let Some(layout) = layout {
            return Ok(layout);
        }
        if Instant::now() > deadline {
            bail!("topic {topic} has no leader for all of its {partitions_min}+ partitions after {timeout:?}");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// A topic name as the protocol crate wants it.
pub fn topic_name(topic: &str) -> TopicName {
    TopicName(StrBytes::from_string(topic.to_owned()))
}
