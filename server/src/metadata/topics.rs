//! Topic rules: legal names, topic config validation (through `configs`), and turning
//! a create or grow request into a [`Command`] with an explicit replica assignment. Pure.

use std::collections::BTreeMap;

use uuid::Uuid;

use super::command::Command;
use super::image::ClusterImage;
use crate::placement::Ring;

/// Kafka's limit on topic name length.
pub const TOPIC_NAME_BYTES_MAX: usize = 249;

/// Why a topic cannot be created; the api layer maps each to Kafka's error code.
#[derive(Clone, Debug, PartialEq)]
pub enum TopicError {
    InvalidTopic(String),
    AlreadyExists(String),
    InvalidPartitions(String),
    InvalidReplicationFactor(String),
    InvalidReplicaAssignment(String),
    InvalidConfig(String),
}

impl TopicError {
    pub fn message(&self) -> &str {
        match self {
            TopicError::InvalidTopic(m)
            | TopicError::AlreadyExists(m)
            | TopicError::InvalidPartitions(m)
            | TopicError::InvalidReplicationFactor(m)
            | TopicError::InvalidReplicaAssignment(m)
            | TopicError::InvalidConfig(m) => m,
        }
    }
}

/// Kafka's rule: 1–249 characters of `[a-zA-Z0-9._-]`, not `.` or `..`.
pub fn validate_name(name: &str) -> Result<(), TopicError> {
    let bad = |why: &str| {
        Err(TopicError::InvalidTopic(format!(
            "Topic name \"{name}\" is illegal, {why}"
        )))
    };
    if name.is_empty() {
        return bad("it can't be empty");
    }
    if name == "." || name == ".." {
        return bad("it can't be '.' or '..'");
    }
    if name.len() > TOPIC_NAME_BYTES_MAX {
        return bad(&format!(
            "it can't be longer than {TOPIC_NAME_BYTES_MAX} characters"
        ));
    }
    if !name
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'_' || b == b'-')
    {
        return bad("it contains a character other than ASCII alphanumerics, '.', '_' and '-'");
    }
    Ok(())
}

/// Validates topic config overrides with the config model: known keys, values of the
/// right type and range, Kafka's cross-field rules.
pub fn validate_configs(configs: &BTreeMap<String, String>) -> Result<(), TopicError> {
    crate::configs::topic::validate_overrides(configs).map_err(|e| TopicError::InvalidConfig(e.0))
}

/// Replica lists for `count` new partitions of the topic `topic_id`, whose partitions
/// so far have the replica lists `existing`: the consistent-hash ring over `brokers`
/// (see `placement`), `rf` distinct brokers each. New topics and CreatePartitions
/// both place this way.
pub fn place_replicas(
    brokers: &[i32],
    topic_id: Uuid,
    existing: &[Vec<i32>],
    count: usize,
    rf: usize,
) -> Vec<Vec<i32>> {
    Ring::with_brokers(brokers).assign(topic_id.as_u128(), existing, count as u32, rf)
}

/// A request to create one topic, already defaulted by the caller.
pub struct CreateTopic<'a> {
    pub name: &'a str,
    /// -1: broker default.
    pub num_partitions: i32,
    /// -1: broker default.
    pub replication_factor: i16,
    /// Explicit assignment: partition index → replicas (empty: computed).
    pub assignments: Vec<(i32, Vec<i32>)>,
    pub configs: BTreeMap<String, String>,
}

/// Checks a create request against the image and builds its command.
pub fn plan_create(
    image: &ClusterImage,
    req: CreateTopic<'_>,
    default_partitions: i32,
    default_replication: i16,
) -> Result<Command, TopicError> {
    validate_name(req.name)?;
    if image.topic(req.name).is_some() {
        return Err(TopicError::AlreadyExists(format!(
            "Topic '{}' already exists.",
            req.name
        )));
    }
    validate_configs(&req.configs)?;
    let brokers = image.placeable_brokers();
    let id = Uuid::new_v4();
    let partitions = if !req.assignments.is_empty() {
        if req.num_partitions != -1 || req.replication_factor != -1 {
            return Err(TopicError::InvalidReplicaAssignment(
                "Both numPartitions or replicationFactor and replicasAssignments were set.".into(),
            ));
        }
        let mut assignments = req.assignments;
        assignments.sort_by_key(|(i, _)| *i);
        let mut out = Vec::new();
        for (expected, (index, replicas)) in assignments.into_iter().enumerate() {
            if index != expected as i32 {
                return Err(TopicError::InvalidReplicaAssignment(
                    "Partitions should be a consecutive 0-based integer sequence".into(),
                ));
            }
            if replicas.is_empty() || replicas.iter().any(|b| !brokers.contains(b)) {
                return Err(TopicError::InvalidReplicaAssignment(format!(
                    "Replica assignment {replicas:?} names an unknown broker"
                )));
            }
            out.push(replicas);
        }
        out
    } else {
        let n = if req.num_partitions == -1 {
            default_partitions
        } else {
            req.num_partitions
        };
        let rf = if req.replication_factor == -1 {
            default_replication
        } else {
            req.replication_factor
        };
        if n <= 0 {
            return Err(TopicError::InvalidPartitions(
                "Number of partitions must be larger than 0.".into(),
            ));
        }
        if rf <= 0 {
            return Err(TopicError::InvalidReplicationFactor(
                "Replication factor must be larger than 0.".into(),
            ));
        }
        if rf as usize > brokers.len() {
            return Err(TopicError::InvalidReplicationFactor(format!(
                "Replication factor: {rf} larger than available brokers: {}.",
                brokers.len()
            )));
        }
        place_replicas(&brokers, id, &[], n as usize, rf as usize)
    };
    Ok(Command::CreateTopic {
        name: req.name.to_string(),
        id,
        partitions,
        configs: req.configs,
    })
}
