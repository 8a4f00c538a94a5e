//! How a [`ClusterImage`] is stored in a snapshot (and sent with one): a format
//! marker, a version, then the image in bincode. Pure.
//!
//! bincode is not self-describing, so a field added to the image would make older
//! snapshots unreadable; the version says which layout follows. Snapshots written
//! before versions existed start directly with the image (its first field, the applied
//! index, is never `u64::MAX`, which is what the marker reads as) and are read with
//! the layout of that time.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;

use uuid::Uuid;

use super::image::{BrokerInfo, ClusterImage, PartitionImage, TopicImage};

/// Eight 0xFF bytes: an applied index no image can have.
const MARKER: [u8; 8] = [0xFF; 8];
/// Version 1 added each partition's `partition_epoch`; version 2 its reassignment
/// (`adding`, `removing`); version 3 its eligible leader replicas (`elr`,
/// `last_known_elr`); version 4 the brokers' epochs (`broker_epochs`); version 5
/// the client quotas (`client_quotas`).
const VERSION: u32 = 5;

/// The image as a snapshot stores it.
pub fn encode(image: &ClusterImage) -> Result<Vec<u8>, String> {
    let mut out = Vec::with_capacity(4096);
    out.extend_from_slice(&MARKER);
    out.extend_from_slice(&VERSION.to_le_bytes());
    bincode::serialize_into(&mut out, image).map_err(|e| e.to_string())?;
    Ok(out)
}

/// Reads an image written by [`encode`], or by a version that wrote an older layout.
pub fn decode(bytes: &[u8]) -> Result<ClusterImage, String> {
    let Some(rest) = bytes.strip_prefix(&MARKER) else {
        return old::<V0Partition>(bytes);
    };
    let (version, body) = rest
        .split_first_chunk::<4>()
        .ok_or("image snapshot: no version")?;
    match u32::from_le_bytes(*version) {
        VERSION => bincode::deserialize(body).map_err(|e| e.to_string()),
        1 => old::<V1Partition>(body),
        2 => old::<V2Partition>(body),
        3 => old::<PartitionImage>(body),
        4 => bincode::deserialize::<V4Image>(body)
            .map(Into::into)
            .map_err(|e| e.to_string()),
        v => Err(format!(
            "image snapshot version {v} is newer than this build reads ({VERSION}); \
             run a newer Fjord on this data directory"
        )),
    }
}

/// An image in an older layout, whose partitions are laid out as `P`.
fn old<P>(bytes: &[u8]) -> Result<ClusterImage, String>
where
    P: serde::de::DeserializeOwned + Into<PartitionImage>,
{
    let v: OldImage<P> = bincode::deserialize(bytes).map_err(|e| e.to_string())?;
    Ok(v.into())
}

/// The layout of older snapshots: the image as today without broker epochs, and
/// partitions laid out as `P`.
#[derive(serde::Deserialize)]
struct OldImage<P> {
    applied_index: u64,
    brokers: BTreeMap<i32, BrokerInfo>,
    fenced: BTreeSet<i32>,
    topics: BTreeMap<String, OldTopic<P>>,
    topic_names_by_id: HashMap<Uuid, String>,
    next_producer_id: i64,
    broker_configs: BTreeMap<String, BTreeMap<String, String>>,
}

#[derive(serde::Deserialize)]
struct OldTopic<P> {
    name: String,
    id: Uuid,
    partitions: Vec<P>,
    configs: BTreeMap<String, String>,
}

/// Version 4: the image as today without client quotas.
#[derive(serde::Deserialize)]
struct V4Image {
    applied_index: u64,
    brokers: BTreeMap<i32, BrokerInfo>,
    fenced: BTreeSet<i32>,
    broker_epochs: BTreeMap<i32, i64>,
    topics: BTreeMap<String, Arc<TopicImage>>,
    topic_names_by_id: HashMap<Uuid, String>,
    next_producer_id: i64,
    broker_configs: BTreeMap<String, BTreeMap<String, String>>,
}

impl From<V4Image> for ClusterImage {
    fn from(v: V4Image) -> ClusterImage {
        ClusterImage {
            applied_index: v.applied_index,
            brokers: v.brokers,
            fenced: v.fenced,
            broker_epochs: v.broker_epochs,
            topics: v.topics,
            topic_names_by_id: v.topic_names_by_id,
            next_producer_id: v.next_producer_id,
            broker_configs: v.broker_configs,
            client_quotas: Default::default(),
        }
    }
}

/// Snapshots written before versions existed: no partition epoch (the leader epoch
/// stands in for it).
#[derive(serde::Deserialize)]
struct V0Partition {
    replicas: Vec<i32>,
    isr: Vec<i32>,
    leader: i32,
    leader_epoch: i32,
}

impl From<V0Partition> for PartitionImage {
    fn from(p: V0Partition) -> PartitionImage {
        V1Partition {
            partition_epoch: p.leader_epoch,
            replicas: p.replicas,
            isr: p.isr,
            leader: p.leader,
            leader_epoch: p.leader_epoch,
        }
        .into()
    }
}

/// Version 1: no reassignments.
#[derive(serde::Deserialize)]
struct V1Partition {
    replicas: Vec<i32>,
    isr: Vec<i32>,
    leader: i32,
    leader_epoch: i32,
    partition_epoch: i32,
}

impl From<V1Partition> for PartitionImage {
    fn from(p: V1Partition) -> PartitionImage {
        V2Partition {
            replicas: p.replicas,
            isr: p.isr,
            leader: p.leader,
            leader_epoch: p.leader_epoch,
            partition_epoch: p.partition_epoch,
            adding: Vec::new(),
            removing: Vec::new(),
        }
        .into()
    }
}

/// Version 2: no eligible leader replicas.
#[derive(serde::Deserialize)]
struct V2Partition {
    replicas: Vec<i32>,
    isr: Vec<i32>,
    leader: i32,
    leader_epoch: i32,
    partition_epoch: i32,
    adding: Vec<i32>,
    removing: Vec<i32>,
}

impl From<V2Partition> for PartitionImage {
    fn from(p: V2Partition) -> PartitionImage {
        PartitionImage {
            replicas: p.replicas,
            isr: p.isr,
            leader: p.leader,
            leader_epoch: p.leader_epoch,
            partition_epoch: p.partition_epoch,
            adding: p.adding,
            removing: p.removing,
            elr: Vec::new(),
            last_known_elr: Vec::new(),
        }
    }
}

impl<P: Into<PartitionImage>> From<OldImage<P>> for ClusterImage {
    fn from(v: OldImage<P>) -> ClusterImage {
        let topics = v
            .topics
            .into_iter()
            .map(|(name, t)| {
                let topic = TopicImage {
                    name: t.name,
                    id: t.id,
                    partitions: t.partitions.into_iter().map(Into::into).collect(),
                    configs: t.configs,
                };
                (name, Arc::new(topic))
            })
            .collect();
        // Registrations from before epochs were kept: epoch 0, below any new one,
        // and what every node reading the same snapshot gives them.
        let broker_epochs = v.brokers.keys().map(|&b| (b, 0)).collect();
        ClusterImage {
            applied_index: v.applied_index,
            brokers: v.brokers,
            fenced: v.fenced,
            broker_epochs,
            topics,
            topic_names_by_id: v.topic_names_by_id,
            next_producer_id: v.next_producer_id,
            broker_configs: v.broker_configs,
            client_quotas: Default::default(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The v0 layout, written as older builds wrote it.
    #[derive(serde::Serialize)]
    struct OldPartition {
        replicas: Vec<i32>,
        isr: Vec<i32>,
        leader: i32,
        leader_epoch: i32,
    }

    #[test]
    fn reads_its_own_format_and_the_unversioned_one() {
        let mut image = ClusterImage {
            applied_index: 7,
            ..Default::default()
        };
        image.topics.insert(
            "t".into(),
            Arc::new(TopicImage {
                name: "t".into(),
                id: Uuid::from_u128(5),
                partitions: vec![PartitionImage {
                    replicas: vec![1, 2],
                    isr: vec![1],
                    leader: 1,
                    leader_epoch: 3,
                    partition_epoch: 9,
                    adding: vec![2],
                    removing: Vec::new(),
                    elr: Vec::new(),
                    last_known_elr: vec![1],
                }],
                configs: BTreeMap::new(),
            }),
        );
        image.broker_epochs.insert(1, 42);
        image.client_quotas.insert(
            vec![("user".into(), None)],
            BTreeMap::from([("producer_byte_rate".into(), 1024.0)]),
        );
        let again = decode(&encode(&image).expect("encode")).expect("decode");
        assert_eq!(again.topics, image.topics);
        assert_eq!(again.applied_index, 7);
        assert_eq!(again.broker_epochs, image.broker_epochs);
        assert_eq!(again.client_quotas, image.client_quotas);

        // Version 4: today's image without client quotas.
        let v4 = (
            7u64,
            BTreeMap::<i32, BrokerInfo>::new(),
            BTreeSet::<i32>::new(),
            image.broker_epochs.clone(),
            image.topics.clone(),
            image.topic_names_by_id.clone(),
            3i64,
            BTreeMap::<String, BTreeMap<String, String>>::new(),
        );
        let mut bytes = MARKER.to_vec();
        bytes.extend_from_slice(&4u32.to_le_bytes());
        bytes.extend(bincode::serialize(&v4).expect("v4 layout"));
        let read = decode(&bytes).expect("version 4 snapshot");
        assert_eq!(read.topics, image.topics);
        assert_eq!(
            (read.next_producer_id, read.broker_epochs),
            (3, image.broker_epochs.clone())
        );
        assert!(read.client_quotas.is_empty());

        let old = (
            7u64,
            BTreeMap::<i32, BrokerInfo>::new(),
            BTreeSet::<i32>::new(),
            BTreeMap::from([(
                "t".to_string(),
                (
                    "t".to_string(),
                    Uuid::from_u128(5),
                    vec![OldPartition {
                        replicas: vec![1, 2],
                        isr: vec![1],
                        leader: 1,
                        leader_epoch: 3,
                    }],
                    BTreeMap::<String, String>::new(),
                ),
            )]),
            HashMap::<Uuid, String>::new(),
            0i64,
            BTreeMap::<String, BTreeMap<String, String>>::new(),
        );
        let bytes = bincode::serialize(&old).expect("old layout");
        let read = decode(&bytes).expect("unversioned snapshot");
        let p = &read.topics["t"].partitions[0];
        assert_eq!((p.leader, p.leader_epoch, p.partition_epoch), (1, 3, 3));

        // Version 1: the same, with partition epochs and no reassignments.
        let v1 = (
            7u64,
            BTreeMap::<i32, BrokerInfo>::new(),
            BTreeSet::<i32>::new(),
            BTreeMap::from([(
                "t".to_string(),
                (
                    "t".to_string(),
                    Uuid::from_u128(5),
                    vec![(vec![1, 2], vec![1], 1, 3, 9)],
                    BTreeMap::<String, String>::new(),
                ),
            )]),
            HashMap::<Uuid, String>::new(),
            0i64,
            BTreeMap::<String, BTreeMap<String, String>>::new(),
        );
        let mut bytes = MARKER.to_vec();
        bytes.extend_from_slice(&1u32.to_le_bytes());
        bytes.extend(bincode::serialize(&v1).expect("v1 layout"));
        let read = decode(&bytes).expect("version 1 snapshot");
        let p = &read.topics["t"].partitions[0];
        assert_eq!(
            (p.isr.clone(), p.partition_epoch, p.adding.clone()),
            (vec![1], 9, vec![])
        );

        // Version 3: today's partitions, no broker epochs (registrations get 0).
        let broker = BrokerInfo {
            id: 1,
            host: "127.0.0.1".into(),
            port: 9092,
            rack: None,
        };
        let v3 = (
            7u64,
            BTreeMap::from([(1, broker)]),
            BTreeSet::<i32>::new(),
            BTreeMap::from([(
                "t".to_string(),
                (
                    "t".to_string(),
                    Uuid::from_u128(5),
                    image.topics["t"].partitions.clone(),
                    BTreeMap::<String, String>::new(),
                ),
            )]),
            HashMap::<Uuid, String>::new(),
            0i64,
            BTreeMap::<String, BTreeMap<String, String>>::new(),
        );
        let mut bytes = MARKER.to_vec();
        bytes.extend_from_slice(&3u32.to_le_bytes());
        bytes.extend(bincode::serialize(&v3).expect("v3 layout"));
        let read = decode(&bytes).expect("version 3 snapshot");
        assert_eq!(read.topics, image.topics);
        assert_eq!(read.broker_epochs, BTreeMap::from([(1, 0)]));

        let mut future = encode(&image).expect("encode");
        future[8] = 99;
        assert!(decode(&future).is_err());
    }
}
