//! Metadata commands: the only way metadata changes. Each carries explicit values
//! (ids, replica assignments), so replaying the log never re-runs placement or
//! random id generation.

use std::collections::BTreeMap;
use std::fmt;

use uuid::Uuid;

use super::image::BrokerInfo;

#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub enum Command {
    /// Registers a broker (or updates its address) and unfences it.
    RegisterBroker(BrokerInfo),
    /// The broker missed its session with the controller: it leaves Metadata
    /// responses and placement until it registers again.
    FenceBroker {
        id: i32,
    },
    /// `partitions[i]` is the replica list of partition i; the first replica leads.
    CreateTopic {
        name: String,
        id: Uuid,
        partitions: Vec<Vec<i32>>,
        configs: BTreeMap<String, String>,
    },
    DeleteTopic {
        id: Uuid,
    },
    AllocateProducerIds {
        count: i64,
    },
    /// Changes one resource's dynamic configs: with `replace_all` the existing ones are
    /// dropped first (AlterConfigs), then `delete` keys are removed and `set` applied.
    /// Values were validated by the proposer.
    AlterConfigs {
        resource: ConfigResource,
        set: BTreeMap<String, String>,
        delete: Vec<String>,
        replace_all: bool,
    },
    /// Adds partitions to a topic: `partitions[i]` is the replica list of partition
    /// `current count + i`.
    CreatePartitions {
        id: Uuid,
        partitions: Vec<Vec<i32>>,
    },
    /// A partition leader's ISR change (Kafka's AlterPartition), applied only if
    /// `broker` still leads partition `partition` of topic `id` in `leader_epoch` and
    /// the partition epoch is still `partition_epoch`.
    AlterPartition {
        id: Uuid,
        partition: i32,
        broker: i32,
        leader_epoch: i32,
        partition_epoch: i32,
        isr: Vec<i32>,
    },
    /// ElectLeaders: a preferred (or, with `unclean`, an unclean) election for each of
    /// `partitions` (topic id, index); the outcome of each is in `Applied::Elections`.
    ElectLeaders {
        unclean: bool,
        partitions: Vec<(Uuid, i32)>,
    },
    /// AlterPartitionReassignments: for each (topic id, index), move to the target
    /// replicas, or with None cancel the reassignment in progress; the outcome of each
    /// is in `Applied::Reassignments`.
    AlterReassignments {
        partitions: Vec<(Uuid, i32, Option<Vec<i32>>)>,
    },
    /// UnregisterBroker: the broker leaves the cluster for good (decommissioned). It
    /// leaves every ISR as on fencing and is no longer registered, so placement and
    /// the ring rebalance stop counting it; its replicas stay listed until moved.
    UnregisterBroker {
        id: i32,
    },
    /// A broker starts after a shutdown that may have lost bytes it counted towards
    /// high watermarks (only with `fjord.replication.durable.high.watermark=false`:
    /// with the default it counts only fsynced bytes, so a crash loses none): fenced
    /// as by `FenceBroker`, and no longer an eligible leader replica (Kafka's unclean
    /// shutdown).
    UncleanShutdown {
        id: i32,
    },
    /// `AlterPartition` with each ISR member's broker epoch (KIP-903; Kafka's
    /// `NewIsrWithEpochs`): as the leader's fetches from it recorded it, or -1 where
    /// none was. Refused with `IneligibleReplica` if a member's epoch is not that of
    /// its current registration, so a fetch from a previous incarnation of a broker
    /// (one that may have lost its log since) never puts it back in the ISR. What
    /// leaders propose; the plain `AlterPartition` stays for logs written before.
    AlterPartitionWithEpochs {
        id: Uuid,
        partition: i32,
        broker: i32,
        leader_epoch: i32,
        partition_epoch: i32,
        isr: Vec<(i32, i64)>,
    },
    /// AlterClientQuotas: checked changes of entities' quotas
    /// (`client_quotas::check_alteration`). New commands go last: commands are
    /// stored by variant index.
    AlterClientQuotas {
        alterations: Vec<super::client_quotas::QuotaAlteration>,
    },
}

/// What a dynamic config belongs to.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum ConfigResource {
    Topic(Uuid),
    /// A broker's id as text, or "" for the cluster-wide default.
    Broker(String),
}

/// Why a command was refused; the image is unchanged when this is returned.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub enum CommandError {
    TopicAlreadyExists(String),
    TopicIdInUse(Uuid),
    UnknownTopicId(Uuid),
    Invalid(String),
    /// The metadata log could not be written, or no controller quorum answered;
    /// nothing was applied.
    Storage(String),
    /// AlterPartition from a broker that does not lead the partition.
    NotLeader,
    /// AlterPartition with an older leader epoch than the partition's.
    FencedLeaderEpoch,
    /// AlterPartition built on an older partition epoch.
    InvalidUpdateVersion,
    /// AlterPartition adding a broker that is not a replica, or not live.
    IneligibleReplica(i32),
    /// A malformed request (Kafka's INVALID_REQUEST).
    InvalidRequest(String),
    UnknownPartition,
}

impl fmt::Display for CommandError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CommandError::TopicAlreadyExists(n) => write!(f, "Topic '{n}' already exists."),
            CommandError::TopicIdInUse(id) => write!(f, "Topic id {id} is in use."),
            CommandError::UnknownTopicId(id) => write!(f, "Topic id {id} does not exist."),
            CommandError::Invalid(m) => f.write_str(m),
            CommandError::Storage(m) => write!(f, "metadata log: {m}"),
            CommandError::NotLeader => f.write_str("the broker does not lead the partition"),
            CommandError::FencedLeaderEpoch => f.write_str("the leader epoch is fenced"),
            CommandError::InvalidUpdateVersion => f.write_str("the partition epoch has moved on"),
            CommandError::IneligibleReplica(b) => {
                write!(f, "broker {b} cannot join the ISR")
            }
            CommandError::InvalidRequest(m) => f.write_str(m),
            CommandError::UnknownPartition => f.write_str("no such partition"),
        }
    }
}
