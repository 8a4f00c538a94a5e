//! CreateTopics (key 19), versions 2–7. Also the topic creation used by Metadata's
//! auto-creation.

use std::collections::BTreeMap;
use std::rc::Rc;
use std::sync::Arc;

use kafka_protocol::messages::create_topics_response::{
    CreatableTopicConfigs, CreatableTopicResult,
};
use kafka_protocol::messages::{CreateTopicsRequest, CreateTopicsResponse};
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::ResponseError;

use crate::metadata::topics::{plan_create, CreateTopic, TopicError};
use crate::metadata::{Command, CommandError, TopicImage};
use crate::shard::Shard;

/// Kafka's code for each topic error.
pub fn topic_error_code(e: &TopicError) -> i16 {
    match e {
        TopicError::InvalidTopic(_) => ResponseError::InvalidTopicException.code(),
        TopicError::AlreadyExists(_) => ResponseError::TopicAlreadyExists.code(),
        TopicError::InvalidPartitions(_) => ResponseError::InvalidPartitions.code(),
        TopicError::InvalidReplicationFactor(_) => ResponseError::InvalidReplicationFactor.code(),
        TopicError::InvalidReplicaAssignment(_) => ResponseError::InvalidReplicaAssignment.code(),
        TopicError::InvalidConfig(_) => ResponseError::InvalidConfig.code(),
    }
}

/// Creates a topic through the metadata log (or only validates it). Returns the
/// created topic as in the new image.
pub async fn create_topic(
    shard: &Rc<Shard>,
    req: CreateTopic<'_>,
    validate_only: bool,
) -> Result<Arc<TopicImage>, TopicError> {
    let name = req.name.to_string();
    let cmd = plan_create(
        &shard.cluster.image(),
        req,
        shard.config.num_partitions,
        shard.config.default_replication_factor,
    )?;
    if validate_only {
        let mut image = crate::metadata::ClusterImage::clone(&shard.cluster.image());
        image
            .apply(image.applied_index + 1, &cmd)
            .map_err(|e| TopicError::InvalidTopic(e.to_string()))?;
        return image
            .topic(&name)
            .cloned()
            .ok_or(TopicError::InvalidTopic(name));
    }
    match shard.metadata.propose(cmd).await {
        Ok((_, image)) => {
            shard.cluster.update_image(image.clone());
            image
                .topic(&name)
                .cloned()
                .ok_or(TopicError::InvalidTopic(name))
        }
        Err(CommandError::TopicAlreadyExists(n)) => Err(TopicError::AlreadyExists(format!(
            "Topic '{n}' already exists."
        ))),
        Err(e) => Err(TopicError::InvalidTopic(e.to_string())),
    }
}

pub async fn handle(
    shard: &Rc<Shard>,
    version: i16,
    req: CreateTopicsRequest,
) -> CreateTopicsResponse {
    let mut results = Vec::with_capacity(req.topics.len());
    let mut seen = std::collections::HashSet::new();
    for t in &req.topics {
        let name = t.name.0.to_string();
        let mut result = CreatableTopicResult::default().with_name(t.name.clone());
        if !seen.insert(name.clone()) {
            result.error_code = ResponseError::InvalidRequest.code();
            result.error_message = Some(StrBytes::from_string(format!(
                "Create topics request from client contains multiple entries for topic {name}"
            )));
            results.push(result);
            continue;
        }
        let mut configs = BTreeMap::new();
        for c in &t.configs {
            if let Some(v) = &c.value {
                configs.insert(c.name.to_string(), v.to_string());
            }
        }
        let create = CreateTopic {
            name: &name,
            num_partitions: t.num_partitions,
            replication_factor: t.replication_factor,
            assignments: t
                .assignments
                .iter()
                .map(|a| {
                    (
                        a.partition_index,
                        a.broker_ids.iter().map(|b| b.0).collect(),
                    )
                })
                .collect(),
            configs,
        };
        match create_topic(shard, create, req.validate_only).await {
            Ok(topic) => {
                result.topic_id = if req.validate_only {
                    Default::default()
                } else {
                    topic.id
                };
                result.num_partitions = topic.partitions.len() as i32;
                result.replication_factor = topic
                    .partitions
                    .first()
                    .map(|p| p.replicas.len() as i16)
                    .unwrap_or(-1);
                if version >= 5 {
                    result.configs = Some(describe_configs(shard, &topic));
                }
            }
            Err(e) => {
                result.error_code = topic_error_code(&e);
                result.error_message = Some(StrBytes::from_string(e.message().to_string()));
                result.num_partitions = -1;
                result.replication_factor = -1;
            }
        }
        super::count_error("CreateTopics", result.error_code);
        results.push(result);
    }
    CreateTopicsResponse::default().with_topics(results)
}

/// The topic's effective configs, as CreateTopics v5+ reports them (the config model's
/// values and sources, as DescribeConfigs).
fn describe_configs(shard: &Shard, topic: &TopicImage) -> Vec<CreatableTopicConfigs> {
    let image = shard.cluster.image();
    let layers = shard.cluster.config_layers(&image);
    crate::configs::topic::TOPIC_CONFIGS
        .iter()
        .map(|t| {
            let d = t.describe(&topic.configs, &layers);
            CreatableTopicConfigs::default()
                .with_name(StrBytes::from_string(d.name))
                .with_value(d.value.map(StrBytes::from_string))
                .with_read_only(d.read_only)
                .with_config_source(d.source as i8)
                .with_is_sensitive(d.sensitive)
        })
        .collect()
}

/// A Metadata-triggered creation with broker defaults.
pub async fn auto_create(shard: &Rc<Shard>, name: &str) -> Result<Arc<TopicImage>, TopicError> {
    let req = CreateTopic {
        name,
        num_partitions: -1,
        replication_factor: -1,
        assignments: Vec::new(),
        configs: BTreeMap::new(),
    };
    match create_topic(shard, req, false).await {
        // Another connection created it first: fine.
        Err(TopicError::AlreadyExists(_)) => shard
            .cluster
            .image()
            .topic(name)
            .cloned()
            .ok_or_else(|| TopicError::InvalidTopic(name.into())),
        other => other,
    }
}

/// Used by DeleteTopics too.
pub async fn propose(shard: &Rc<Shard>, cmd: Command) -> Result<(), CommandError> {
    let (_, image) = shard.metadata.propose(cmd).await?;
    shard.cluster.update_image(image);
    Ok(())
}
