//! Talking to the cluster before the load starts: ApiVersions negotiation, topic
//! creation, and finding the leader of every partition through Metadata.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use kafka_protocol::error::ParseResponseErrorCode;
use kafka_protocol::messages::create_topics_request::CreatableTopic;
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

/// Creates `topic` with `partitions` partitions and replication factor 1, waiting up
/// to `timeout` for the answer. An existing topic is fine. Without CreateTopics,
/// relies on Metadata auto-creation.
pub async fn create_topic(
    bootstrap: &str,
    versions: &Versions,
    topic: &str,
    partitions: i32,
    timeout: Duration,
) -> Result<()> {
    let Some(version) = versions.create_topics else {
        eprintln!("broker does not advertise CreateTopics; relying on auto-creation");
        return Ok(());
    };
    let (mut tx, mut rx) = connect(bootstrap).await?;
    let req = CreateTopicsRequest::default()
        .with_timeout_ms(i32::try_from(timeout.as_millis()).unwrap_or(i32::MAX))
        .with_topics(vec![CreatableTopic::default()
            .with_name(topic_name(topic))
            .with_num_partitions(partitions)
            .with_replication_factor(1)]);
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
    /// `host:port` of the broker leading every partition.
    pub leader_addr: String,
    /// Partition indexes, sorted.
    pub partitions: Vec<i32>,
}

/// Polls Metadata (up to `timeout`) until `topic` has at least `partitions_min` partitions,
/// each with a leader. Only single-leader layouts are supported: all partitions must
/// be led by the same broker. Metadata may auto-create the topic only when
/// `auto_create` is set.
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
            let mut leaders = BTreeSet::new();
            let mut partitions = Vec::new();
            for p in &t.partitions {
                if p.error_code.is_err() || p.leader_id.0 < 0 {
                    return None;
                }
                leaders.insert(p.leader_id.0);
                partitions.push(p.partition_index);
            }
            partitions.sort_unstable();
            let leader = *leaders.first()?;
            if leaders.len() > 1 {
                eprintln!(
                    "partitions have several leaders {leaders:?}; only one broker is supported"
                );
                return None;
            }
            let broker = response.brokers.iter().find(|b| b.node_id.0 == leader)?;
            Some(TopicLayout {
                leader_addr: format!("{}:{}", broker.host.as_str(), broker.port),
                partitions,
            })
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
