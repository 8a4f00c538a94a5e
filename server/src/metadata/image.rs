//! The cluster image: every piece of metadata a shard needs, as one immutable value.
//!
//! Invariant: an image is only ever produced by [`ClusterImage::apply`] from the
//! previous image and a command, so replaying the metadata log rebuilds it exactly.
//! Shards hold an `Arc<ClusterImage>` and never mutate it.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use uuid::Uuid;

use super::command::{Command, CommandError};

/// A broker as clients see it in Metadata responses.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct BrokerInfo {
    pub id: i32,
    pub host: String,
    pub port: u16,
    pub rack: Option<String>,
}

/// One partition's replica set and leadership.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct PartitionImage {
    pub replicas: Vec<i32>,
    pub isr: Vec<i32>,
    pub leader: i32,
    pub leader_epoch: i32,
}

/// A topic: its id, partitions (index = partition number) and config overrides.
#[derive(Clone, Debug, PartialEq)]
pub struct TopicImage {
    pub name: String,
    pub id: Uuid,
    pub partitions: Vec<PartitionImage>,
    pub configs: BTreeMap<String, String>,
}

impl TopicImage {
    /// Kafka's internal topics are flagged in Metadata responses.
    pub fn is_internal(&self) -> bool {
        self.name == "__consumer_offsets" || self.name == "__transaction_state"
    }
}

/// The whole metadata state at one point of the metadata log.
#[derive(Clone, Debug, Default)]
pub struct ClusterImage {
    /// Index of the last command applied (0 = none).
    pub applied_index: u64,
    pub brokers: BTreeMap<i32, BrokerInfo>,
    pub topics: BTreeMap<String, Arc<TopicImage>>,
    pub topic_names_by_id: HashMap<Uuid, String>,
    /// The next producer id to hand out; ids below it were allocated before.
    pub next_producer_id: i64,
}

/// What applying a command produced, for the caller that proposed it.
#[derive(Clone, Debug, PartialEq)]
pub enum Applied {
    Done,
    /// A block of producer ids `[start, start + count)`.
    ProducerIds {
        start: i64,
        count: i64,
    },
}

impl ClusterImage {
    pub fn topic(&self, name: &str) -> Option<&Arc<TopicImage>> {
        self.topics.get(name)
    }

    pub fn topic_by_id(&self, id: &Uuid) -> Option<&Arc<TopicImage>> {
        self.topic_names_by_id
            .get(id)
            .and_then(|n| self.topics.get(n))
    }

    /// Applies one command: pure and deterministic. On error the image is unchanged.
    pub fn apply(&mut self, index: u64, cmd: &Command) -> Result<Applied, CommandError> {
        let out = match cmd {
            Command::RegisterBroker(b) => {
                self.brokers.insert(b.id, b.clone());
                Applied::Done
            }
            Command::CreateTopic {
                name,
                id,
                partitions,
                configs,
            } => {
                if self.topics.contains_key(name) {
                    return Err(CommandError::TopicAlreadyExists(name.clone()));
                }
                if self.topic_names_by_id.contains_key(id) {
                    return Err(CommandError::TopicIdInUse(*id));
                }
                let partitions = partitions
                    .iter()
                    .map(|replicas| PartitionImage {
                        leader: replicas.first().copied().unwrap_or(-1),
                        isr: replicas.clone(),
                        replicas: replicas.clone(),
                        leader_epoch: 0,
                    })
                    .collect();
                let topic = TopicImage {
                    name: name.clone(),
                    id: *id,
                    partitions,
                    configs: configs.clone(),
                };
                self.topic_names_by_id.insert(*id, name.clone());
                self.topics.insert(name.clone(), Arc::new(topic));
                Applied::Done
            }
            Command::DeleteTopic { id } => {
                let name = self
                    .topic_names_by_id
                    .remove(id)
                    .ok_or(CommandError::UnknownTopicId(*id))?;
                self.topics.remove(&name);
                Applied::Done
            }
            Command::AllocateProducerIds { count } => {
                if *count <= 0 {
                    return Err(CommandError::Invalid(
                        "producer id block must be positive".into(),
                    ));
                }
                let start = self.next_producer_id;
                self.next_producer_id = start.saturating_add(*count);
                Applied::ProducerIds {
                    start,
                    count: *count,
                }
            }
        };
        self.applied_index = index;
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn create(name: &str, n: usize) -> Command {
        Command::CreateTopic {
            name: name.into(),
            id: Uuid::from_u128(name.len() as u128 + 1),
            partitions: vec![vec![1]; n],
            configs: BTreeMap::new(),
        }
    }

    #[test]
    fn create_delete_and_replay_are_deterministic() {
        let cmds = [
            create("a", 3),
            Command::AllocateProducerIds { count: 1000 },
            create("bb", 1),
            Command::DeleteTopic {
                id: Uuid::from_u128(2),
            },
            Command::AllocateProducerIds { count: 1000 },
        ];
        let mut img = ClusterImage::default();
        let mut results = Vec::new();
        for (i, c) in cmds.iter().enumerate() {
            results.push(img.apply(i as u64 + 1, c).expect("apply"));
        }
        assert_eq!(
            results[4],
            Applied::ProducerIds {
                start: 1000,
                count: 1000
            }
        );
        assert!(img.topic("a").is_none());
        assert_eq!(img.topic("bb").map(|t| t.partitions.len()), Some(1));
        assert_eq!(img.applied_index, 5);
        let mut again = ClusterImage::default();
        for (i, c) in cmds.iter().enumerate() {
            again.apply(i as u64 + 1, c).expect("apply");
        }
        assert_eq!(again.topics, img.topics);
        assert_eq!(again.next_producer_id, 2000);
    }

    #[test]
    fn duplicate_topic_is_rejected_without_change() {
        let mut img = ClusterImage::default();
        img.apply(1, &create("a", 1)).expect("apply");
        let before = img.applied_index;
        assert!(matches!(
            img.apply(2, &create("a", 2)),
            Err(CommandError::TopicAlreadyExists(_))
        ));
        assert_eq!(img.applied_index, before);
        assert_eq!(img.topic("a").map(|t| t.partitions.len()), Some(1));
    }
}
