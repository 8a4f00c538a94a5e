//! The cluster image: every piece of metadata a shard needs, as one immutable value.
//!
//! Invariant: an image is only ever produced by [`ClusterImage::apply`] from the
//! previous image and a command, so replaying the metadata log rebuilds it exactly.
//! Shards hold an `Arc<ClusterImage>` and never mutate it.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;

use uuid::Uuid;

use super::command::{Command, CommandError, ConfigResource};
use super::partition_change;
pub use super::partition_change::{PartitionImage, Rules};
use super::reassignment;

/// A broker as clients see it in Metadata responses.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct BrokerInfo {
    pub id: i32,
    pub host: String,
    pub port: u16,
    pub rack: Option<String>,
}

/// A topic: its id, partitions (index = partition number) and config overrides.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
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

/// The whole metadata state at one point of the metadata log. Serialized whole as
/// the Raft snapshot.
#[derive(Clone, Debug, Default, serde::Serialize, serde::Deserialize)]
pub struct ClusterImage {
    /// Index of the last Raft log entry applied (0 = none).
    pub applied_index: u64,
    /// Every registered broker, fenced or not.
    pub brokers: BTreeMap<i32, BrokerInfo>,
    /// Registered brokers whose session expired: not shown to clients, not placed on.
    pub fenced: BTreeSet<i32>,
    /// Each registered broker's epoch (KIP-903): the log index of its latest
    /// `RegisterBroker`, so every registration — each restart, each return from
    /// fencing — has a larger one than the last. Followers send it with each fetch;
    /// the ISR admits only members fetching with their current one.
    pub broker_epochs: BTreeMap<i32, i64>,
    pub topics: BTreeMap<String, Arc<TopicImage>>,
    pub topic_names_by_id: HashMap<Uuid, String>,
    /// The next producer id to hand out; ids below it were allocated before.
    pub next_producer_id: i64,
    /// Dynamic broker configs by resource name: "" is the cluster-wide default, "1"
    /// broker 1's own. Keys are broker config names (`log.retention.ms`).
    pub broker_configs: BTreeMap<String, BTreeMap<String, String>>,
    /// Client quotas by entity (`client_quotas`).
    pub client_quotas: super::client_quotas::ClientQuotas,
}

/// What applying a command produced, for the caller that proposed it.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub enum Applied {
    Done,
    /// A block of producer ids `[start, start + count)`.
    ProducerIds {
        start: i64,
        count: i64,
    },
    /// ElectLeaders: one outcome per partition asked for, in order.
    Elections(Vec<partition_change::ElectionOutcome>),
    /// AlterReassignments: one outcome per partition asked for, in order.
    Reassignments(Vec<Result<(), reassignment::ReassignError>>),
}

impl ClusterImage {
    pub fn topic(&self, name: &str) -> Option<&Arc<TopicImage>> {
        self.topics.get(name)
    }

    /// The brokers new replicas may be placed on (registered, not fenced), ascending.
    pub fn placeable_brokers(&self) -> Vec<i32> {
        self.live_brokers().map(|b| b.id).collect()
    }

    /// Registered brokers that are not fenced, by id.
    pub fn live_brokers(&self) -> impl Iterator<Item = &BrokerInfo> {
        self.brokers
            .values()
            .filter(|b| !self.fenced.contains(&b.id))
    }

    /// Whether broker `id` is registered and not fenced.
    pub fn is_live(&self, id: i32) -> bool {
        self.brokers.contains_key(&id) && !self.fenced.contains(&id)
    }

    /// The epoch of broker `id`'s registration while it is live (Kafka's
    /// `getAliveBrokerEpoch`).
    pub fn alive_broker_epoch(&self, id: i32) -> Option<i64> {
        if !self.is_live(id) {
            return None;
        }
        self.broker_epochs.get(&id).copied()
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
                self.broker_epochs.insert(b.id, index as i64);
                if self.fenced.remove(&b.id) {
                    self.change_partitions(partition_change::on_unfenced);
                }
                Applied::Done
            }
            Command::FenceBroker { id } | Command::UncleanShutdown { id } => {
                if !self.brokers.contains_key(id) {
                    return Err(CommandError::Invalid(format!(
                        "broker {id} is not registered"
                    )));
                }
                self.fenced.insert(*id);
                let id = *id;
                let change = match cmd {
                    Command::UncleanShutdown { .. } => partition_change::on_unclean_shutdown,
                    _ => partition_change::on_fenced,
                };
                self.change_partitions(|p, live, rules| change(p, id, live, rules));
                Applied::Done
            }
            Command::UnregisterBroker { id } => {
                if !self.brokers.contains_key(id) {
                    return Err(CommandError::Invalid(format!(
                        "Broker ID {id} is not currently registered"
                    )));
                }
                let id = *id;
                // Out of every ISR, ELR and leadership as on an unclean shutdown, then gone.
                self.change_partitions(|p, live, rules| {
                    partition_change::on_unclean_shutdown(p, id, live, rules)
                });
                self.fenced.remove(&id);
                self.brokers.remove(&id);
                self.broker_epochs.remove(&id);
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
                    .map(|replicas| PartitionImage::new(replicas.clone()))
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
            Command::AlterConfigs {
                resource,
                set,
                delete,
                replace_all,
            } => {
                let edit = |configs: &mut BTreeMap<String, String>| {
                    if *replace_all {
                        configs.clear();
                    }
                    for k in delete {
                        configs.remove(k);
                    }
                    configs.extend(set.iter().map(|(k, v)| (k.clone(), v.clone())));
                };
                const MIN_ISR: &str = "min.insync.replicas";
                let min_isr_changed = *replace_all
                    || set.contains_key(MIN_ISR)
                    || delete.iter().any(|k| k == MIN_ISR);
                let unclean_changed = set.contains_key("unclean.leader.election.enable");
                match resource {
                    ConfigResource::Topic(id) => {
                        let name = self
                            .topic_names_by_id
                            .get(id)
                            .ok_or(CommandError::UnknownTopicId(*id))?;
                        let (brokers, fenced) = (&self.brokers, &self.fenced);
                        let live = |b: i32| brokers.contains_key(&b) && !fenced.contains(&b);
                        if let Some(topic) = self.topics.get_mut(name) {
                            let t = Arc::make_mut(topic);
                            edit(&mut t.configs);
                            let rules = rules(&self.broker_configs, t);
                            for p in t.partitions.iter_mut() {
                                if min_isr_changed {
                                    if let Some(n) = partition_change::on_min_isr_changed(p) {
                                        *p = n;
                                    }
                                }
                                // Unclean elections allowed now: a leaderless partition
                                // takes any live replica at once.
                                if unclean_changed {
                                    if let Some(n) = partition_change::on_unfenced(p, &live, &rules)
                                    {
                                        *p = n;
                                    }
                                }
                            }
                        }
                    }
                    ConfigResource::Broker(name) => {
                        let configs = self.broker_configs.entry(name.clone()).or_default();
                        edit(configs);
                        if configs.is_empty() {
                            self.broker_configs.remove(name);
                        }
                        if min_isr_changed && name.is_empty() {
                            self.change_partitions(|p, _, _| {
                                partition_change::on_min_isr_changed(p)
                            });
                        }
                        if unclean_changed && name.is_empty() {
                            self.change_partitions(partition_change::on_unfenced);
                        }
                    }
                }
                Applied::Done
            }
            Command::CreatePartitions { id, partitions } => {
                let name = self
                    .topic_names_by_id
                    .get(id)
                    .ok_or(CommandError::UnknownTopicId(*id))?;
                if partitions.iter().any(|r| r.is_empty()) {
                    return Err(CommandError::Invalid(
                        "a new partition needs at least one replica".into(),
                    ));
                }
                if let Some(topic) = self.topics.get_mut(name) {
                    Arc::make_mut(topic).partitions.extend(
                        partitions
                            .iter()
                            .map(|replicas| PartitionImage::new(replicas.clone())),
                    );
                }
                Applied::Done
            }
            Command::AlterPartition {
                id,
                partition,
                broker,
                leader_epoch,
                partition_epoch,
                isr,
            } => {
                let change = partition_change::IsrChange {
                    broker: *broker,
                    leader_epoch: *leader_epoch,
                    partition_epoch: *partition_epoch,
                    isr,
                    epochs: &[],
                };
                self.alter_partition(id, *partition, &change)?
            }
            Command::AlterPartitionWithEpochs {
                id,
                partition,
                broker,
                leader_epoch,
                partition_epoch,
                isr,
            } => {
                let (members, epochs): (Vec<i32>, Vec<i64>) = isr.iter().copied().unzip();
                let change = partition_change::IsrChange {
                    broker: *broker,
                    leader_epoch: *leader_epoch,
                    partition_epoch: *partition_epoch,
                    isr: &members,
                    epochs: &epochs,
                };
                self.alter_partition(id, *partition, &change)?
            }
            Command::AlterClientQuotas { alterations } => {
                super::client_quotas::apply(&mut self.client_quotas, alterations);
                Applied::Done
            }
            Command::AlterReassignments { partitions } => {
                let mut outcomes = Vec::with_capacity(partitions.len());
                for (id, index, target) in partitions {
                    outcomes.push(self.reassign(id, *index, target.as_deref()));
                }
                Applied::Reassignments(outcomes)
            }
            Command::ElectLeaders {
                unclean,
                partitions,
            } => {
                let mut outcomes = Vec::with_capacity(partitions.len());
                for (id, index) in partitions {
                    outcomes.push(self.elect(id, *index, *unclean));
                }
                Applied::Elections(outcomes)
            }
        };
        self.applied_index = index;
        Ok(out)
    }

    /// One partition's ISR change for `Command::AlterPartition` (and its form with
    /// broker epochs).
    fn alter_partition(
        &mut self,
        id: &Uuid,
        partition: i32,
        change: &partition_change::IsrChange<'_>,
    ) -> Result<Applied, CommandError> {
        let name = self
            .topic_names_by_id
            .get(id)
            .ok_or(CommandError::UnknownTopicId(*id))?;
        let (brokers, fenced, epochs) = (&self.brokers, &self.fenced, &self.broker_epochs);
        let live = |b: i32| brokers.contains_key(&b) && !fenced.contains(&b);
        let registration = |b: i32| epochs.get(&b).copied();
        let topic = self
            .topics
            .get_mut(name)
            .ok_or(CommandError::UnknownTopicId(*id))?;
        let rules = rules(&self.broker_configs, topic);
        let current = usize::try_from(partition)
            .ok()
            .and_then(|i| topic.partitions.get(i))
            .ok_or(CommandError::UnknownPartition)?;
        let next = partition_change::alter_isr(current, change, &live, &registration, &rules)
            .map_err(|e| {
                use partition_change::IsrChangeError as E;
                match e {
                    E::NotLeader => CommandError::NotLeader,
                    E::FencedLeaderEpoch => CommandError::FencedLeaderEpoch,
                    E::InvalidUpdateVersion => CommandError::InvalidUpdateVersion,
                    E::IneligibleReplica(b) => CommandError::IneligibleReplica(b),
                    E::InvalidRequest(m) => CommandError::InvalidRequest(m),
                }
            })?;
        // The ISR may now hold every target of a reassignment: finish it.
        let next = reassignment::after_isr_change(next, &live);
        Arc::make_mut(topic).partitions[partition as usize] = next;
        Ok(Applied::Done)
    }

    /// One partition's election for `Command::ElectLeaders`.
    fn elect(&mut self, id: &Uuid, index: i32, unclean: bool) -> partition_change::ElectionOutcome {
        use partition_change::ElectionOutcome;
        let (brokers, fenced) = (&self.brokers, &self.fenced);
        let live = |b: i32| brokers.contains_key(&b) && !fenced.contains(&b);
        let Some(topic) = self
            .topic_names_by_id
            .get(id)
            .and_then(|n| self.topics.get_mut(n))
        else {
            return ElectionOutcome::UnknownPartition;
        };
        let Some(current) = usize::try_from(index)
            .ok()
            .and_then(|i| topic.partitions.get(i))
        else {
            return ElectionOutcome::UnknownPartition;
        };
        let elected = if unclean {
            partition_change::elect_unclean(current, &live)
        } else {
            partition_change::elect_preferred(current, &live)
        };
        match elected {
            Ok(next) => {
                Arc::make_mut(topic).partitions[index as usize] = next;
                ElectionOutcome::Elected
            }
            Err(outcome) => outcome,
        }
    }

    /// One partition's reassignment (or, without a target, its cancellation).
    fn reassign(
        &mut self,
        id: &Uuid,
        index: i32,
        target: Option<&[i32]>,
    ) -> Result<(), reassignment::ReassignError> {
        let (brokers, fenced) = (&self.brokers, &self.fenced);
        let registered = |b: i32| brokers.contains_key(&b);
        let live = |b: i32| brokers.contains_key(&b) && !fenced.contains(&b);
        let topic = self
            .topic_names_by_id
            .get(id)
            .and_then(|n| self.topics.get_mut(n))
            .ok_or(reassignment::ReassignError::UnknownPartition)?;
        let current = usize::try_from(index)
            .ok()
            .and_then(|i| topic.partitions.get(i))
            .ok_or(reassignment::ReassignError::UnknownPartition)?;
        let next = match target {
            Some(t) => reassignment::reassign(current, t, &registered, &live)?,
            None => reassignment::cancel(current, &live)?,
        };
        if next != *current {
            Arc::make_mut(topic).partitions[index as usize] = next;
        }
        Ok(())
    }

    /// Replaces every partition for which `change(partition, live)` returns a new
    /// state; `live` says whether a broker is registered and not fenced.
    fn change_partitions(
        &mut self,
        change: impl Fn(&PartitionImage, &dyn Fn(i32) -> bool, &Rules) -> Option<PartitionImage>,
    ) {
        let (brokers, fenced) = (&self.brokers, &self.fenced);
        let live = |b: i32| brokers.contains_key(&b) && !fenced.contains(&b);
        for topic in self.topics.values_mut() {
            let rules = rules(&self.broker_configs, topic);
            let changed: Vec<(usize, PartitionImage)> = topic
                .partitions
                .iter()
                .enumerate()
                .filter_map(|(i, p)| change(p, &live, &rules).map(|n| (i, n)))
                .collect();
            if changed.is_empty() {
                continue;
            }
            let t = Arc::make_mut(topic);
            for (i, n) in changed {
                t.partitions[i] = n;
            }
        }
    }
}

/// The settings the partition rules take from `topic`'s configs, else from the
/// cluster-wide defaults (`broker_configs[""]`), else Kafka's defaults. Pure.
pub fn rules(
    broker_configs: &BTreeMap<String, BTreeMap<String, String>>,
    topic: &TopicImage,
) -> Rules {
    let get = |key: &str| {
        topic
            .configs
            .get(key)
            .or_else(|| broker_configs.get("").and_then(|c| c.get(key)))
    };
    Rules {
        min_isr: get("min.insync.replicas")
            .and_then(|v| v.trim().parse::<usize>().ok())
            .unwrap_or(1),
        unclean: get("unclean.leader.election.enable")
            .is_some_and(|v| v.trim().eq_ignore_ascii_case("true")),
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

    #[test]
    fn alter_configs_and_create_partitions() {
        let mut img = ClusterImage::default();
        img.apply(1, &create("a", 2)).expect("apply");
        let id = Uuid::from_u128(2);
        let set = |pairs: &[(&str, &str)]| {
            pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect::<BTreeMap<_, _>>()
        };
        let alter = |resource: ConfigResource, s: &[(&str, &str)], d: &[&str], all: bool| {
            Command::AlterConfigs {
                resource,
                set: set(s),
                delete: d.iter().map(|k| k.to_string()).collect(),
                replace_all: all,
            }
        };
        let topic = ConfigResource::Topic(id);
        img.apply(
            2,
            &alter(
                topic.clone(),
                &[("retention.ms", "1"), ("segment.ms", "9")],
                &[],
                false,
            ),
        )
        .expect("set");
        img.apply(
            3,
            &alter(
                topic.clone(),
                &[("cleanup.policy", "compact")],
                &["segment.ms"],
                false,
            ),
        )
        .expect("incremental");
        assert_eq!(
            img.topic("a").map(|t| t.configs.clone()),
            Some(set(&[("cleanup.policy", "compact"), ("retention.ms", "1")]))
        );
        img.apply(4, &alter(topic, &[("max.message.bytes", "10")], &[], true))
            .expect("replace");
        assert_eq!(
            img.topic("a").map(|t| t.configs.clone()),
            Some(set(&[("max.message.bytes", "10")]))
        );
        let cluster = ConfigResource::Broker(String::new());
        img.apply(
            5,
            &alter(cluster.clone(), &[("log.retention.ms", "5")], &[], false),
        )
        .expect("broker");
        assert_eq!(img.broker_configs[""]["log.retention.ms"], "5");
        img.apply(6, &alter(cluster, &[], &["log.retention.ms"], false))
            .expect("delete");
        assert!(img.broker_configs.is_empty());
        let unknown = alter(ConfigResource::Topic(Uuid::from_u128(99)), &[], &[], false);
        assert!(matches!(
            img.apply(7, &unknown),
            Err(CommandError::UnknownTopicId(_))
        ));

        img.apply(
            7,
            &Command::CreatePartitions {
                id,
                partitions: vec![vec![1], vec![1]],
            },
        )
        .expect("grow");
        let t = img.topic("a").expect("topic");
        assert_eq!(t.partitions.len(), 4);
        assert_eq!(
            (t.partitions[3].leader, t.partitions[3].leader_epoch),
            (1, 0)
        );
        let bad = Command::CreatePartitions {
            id,
            partitions: vec![vec![]],
        };
        assert!(img.apply(8, &bad).is_err());
        assert_eq!(img.applied_index, 7);
    }

    /// KIP-903: each registration has a larger epoch; an ISR change naming a member
    /// with an earlier one is refused, its current one (or -1) is taken.
    #[test]
    fn broker_epochs_follow_registrations_and_fence_isr_changes() {
        let broker = |id| {
            Command::RegisterBroker(BrokerInfo {
                id,
                host: "127.0.0.1".into(),
                port: 9092,
                rack: None,
            })
        };
        let mut img = ClusterImage::default();
        for (i, id) in [1, 2, 3].into_iter().enumerate() {
            img.apply(i as u64 + 1, &broker(id)).expect("register");
        }
        assert_eq!(img.alive_broker_epoch(2), Some(2));
        let id = Uuid::from_u128(9);
        img.apply(
            4,
            &Command::CreateTopic {
                name: "t".into(),
                id,
                partitions: vec![vec![1, 2, 3]],
                configs: BTreeMap::new(),
            },
        )
        .expect("create");
        let p = |img: &ClusterImage| img.topic("t").expect("topic").partitions[0].clone();
        // Broker 3 restarts: fenced (out of the ISR), then registered again.
        img.apply(5, &Command::FenceBroker { id: 3 })
            .expect("fence");
        assert_eq!(img.alive_broker_epoch(3), None);
        img.apply(6, &broker(3)).expect("register again");
        assert_eq!(img.alive_broker_epoch(3), Some(6));
        let before = p(&img);
        assert_eq!(before.isr, vec![1, 2]);
        let alter = |epoch3| Command::AlterPartitionWithEpochs {
            id,
            partition: 0,
            broker: 1,
            leader_epoch: before.leader_epoch,
            partition_epoch: before.partition_epoch,
            isr: vec![(1, 1), (2, -1), (3, epoch3)],
        };
        // A fetch from its previous run (epoch 3) cannot bring it back.
        assert_eq!(
            img.apply(7, &alter(3)),
            Err(CommandError::IneligibleReplica(3))
        );
        assert_eq!(p(&img), before);
        img.apply(7, &alter(6)).expect("current epoch");
        assert_eq!(p(&img).isr, vec![1, 2, 3]);
        // Gone for good: no epoch left.
        img.apply(8, &Command::UnregisterBroker { id: 2 })
            .expect("unregister");
        assert!(!img.broker_epochs.contains_key(&2));
    }
}
