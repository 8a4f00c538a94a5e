//! Fetch (key 1), versions 4–18: topic names up to v12, topic ids from v13.
//!
//! Reads run on each partition's owning shard and return whole batches (a fetch at an
//! offset inside a batch gets that whole batch). Long polling: while fewer than
//! `min_bytes` are available the request waits, up to `max_wait_ms`, for any of its
//! partitions' high watermarks to move. Consumer fetches may use fetch sessions
//! (KIP-227, `shard::fetch_sessions`): the session is resolved into a full list of partitions
//! before the reads and the answer filtered to what changed after them. A consumer with
//! a `consumer_byte_rate` quota is charged the records it is sent (`throttle`).

use std::rc::Rc;
use std::time::Duration;

use bytes::Bytes;
use kafka_protocol::messages::fetch_response::{
    FetchableTopicResponse, LeaderIdAndEpoch, NodeEndpoint, PartitionData,
};
use kafka_protocol::messages::{BrokerId, FetchRequest, FetchResponse};
use kafka_protocol::protocol::{Encodable, StrBytes};
use kafka_protocol::ResponseError;
use tokio::sync::watch;
use uuid::Uuid;

use crate::metadata::ClusterImage;
use crate::partition::{trim_to_budget, StorageError};
use crate::quota::{Kind, Record, Window};
use crate::shard::fetch_sessions::Context;
use crate::shard::Shard;

/// One partition to read, routed to its owner (a consumer's or a follower's).
#[derive(Clone)]
pub(super) struct Read {
    pub topic_id: Uuid,
    pub index: i32,
    pub offset: i64,
    /// The leader epoch the client believes current (-1: unknown).
    pub current_leader_epoch: i32,
    /// The epoch of the follower's last batch (-1: unknown, or a consumer).
    pub last_fetched_epoch: i32,
    /// The high watermark the follower knows (v18; -1 unknown, `i64::MAX` when not
    /// sent): a leader whose high watermark is past it answers the follower at once.
    pub known_high_watermark: i64,
    pub max_bytes: usize,
}

/// A request partition: (topic position, partition index, the read or an early error).
pub(super) type Slot = (usize, i32, Result<Read, i16>);

/// Walks the request's partitions in order: the read for each partition this node
/// leads, or the error it gets at once. Shared with the follower side.
pub(super) fn targets(
    shard: &Shard,
    image: &ClusterImage,
    version: i16,
    req: &FetchRequest,
    max_bytes: usize,
) -> Vec<Slot> {
    let mut slots: Vec<Slot> = Vec::new();
    for (t, topic) in req.topics.iter().enumerate() {
        let found = if version >= 13 {
            image.topic_by_id(&topic.topic_id)
        } else {
            image.topic(topic.topic.0.as_str())
        };
        for p in &topic.partitions {
            let slot = match found {
                _ if slots.len() >= shard.config.max_partitions_per_request => {
                    Err(ResponseError::PolicyViolation.code())
                }
                None if version >= 13 => Err(ResponseError::UnknownTopicId.code()),
                None => Err(ResponseError::UnknownTopicOrPartition.code()),
                Some(tp) if p.partition < 0 || p.partition as usize >= tp.partitions.len() => {
                    Err(ResponseError::UnknownTopicOrPartition.code())
                }
                Some(tp) if !shard.cluster.leads(tp, p.partition) => {
                    Err(ResponseError::NotLeaderOrFollower.code())
                }
                Some(tp) => Ok(Read {
                    topic_id: tp.id,
                    index: p.partition,
                    offset: p.fetch_offset,
                    current_leader_epoch: if version >= 9 {
                        p.current_leader_epoch
                    } else {
                        -1
                    },
                    last_fetched_epoch: if version >= 12 {
                        p.last_fetched_epoch
                    } else {
                        -1
                    },
                    known_high_watermark: if version >= 18 {
                        p.high_watermark
                    } else {
                        i64::MAX
                    },
                    max_bytes: (p.partition_max_bytes.max(0) as usize).min(max_bytes),
                }),
            };
            slots.push((t, p.partition, slot));
        }
    }
    slots
}

/// The reads of `slots` with their owner shard and slot position.
fn routed(shard: &Shard, slots: &[Slot]) -> Vec<(usize, (usize, Read))> {
    slots
        .iter()
        .enumerate()
        .filter_map(|(i, (_, _, s))| s.as_ref().ok().map(|r| (i, r)))
        .map(|(i, r)| (shard.owner(&r.topic_id, r.index), (i, r.clone())))
        .collect()
}

/// Fetch's long poll (consumers' and followers'): each round runs `read` on every
/// owner shard for its routed partitions and maps the outcomes back to request slots;
/// rounds repeat until `min_bytes` are read, an outcome answers at once, or `deadline`
/// passes (`route::long_poll`).
pub(super) async fn poll_reads<O, F, Fut>(
    shard: &Rc<Shard>,
    slots: &[Slot],
    min_bytes: i32,
    deadline: tokio::time::Instant,
    read: F,
) -> Vec<Option<O>>
where
    O: super::route::Polled + Send + 'static,
    F: Fn(Rc<Shard>, Vec<(usize, Read)>) -> Fut + Send + Clone + 'static,
    Fut: std::future::Future<Output = Vec<(usize, O)>> + 'static,
{
    let routed = routed(shard, slots);
    let min_bytes = min_bytes.max(1) as usize;
    super::route::long_poll(slots.len(), min_bytes, deadline, || {
        let read = read.clone();
        let routed = &routed;
        async move {
            let results = shard
                .scatter_by_shard(routed.clone(), move |s, reads| {
                    read(s, reads.into_iter().map(|(pos, (_, r))| (pos, r)).collect())
                })
                .await;
            // Back from positions in `routed` to request slots.
            results
                .into_iter()
                .zip(routed)
                .filter_map(|(o, (_, (slot, _)))| o.map(|o| (*slot, o)))
                .collect()
        }
    })
    .await
}

/// One empty response topic per request topic, in order.
pub(super) fn topic_shells(req: &FetchRequest) -> Vec<FetchableTopicResponse> {
    req.topics
        .iter()
        .map(|t| {
            FetchableTopicResponse::default()
                .with_topic(t.topic.clone())
                .with_topic_id(t.topic_id)
        })
        .collect()
}

/// What the owner answered.
struct ReadOutcome {
    error: i16,
    records: Bytes,
    high_watermark: i64,
    log_start_offset: i64,
    watch: Option<watch::Receiver<i64>>,
}

impl super::route::Polled for ReadOutcome {
    fn bytes(&self) -> usize {
        self.records.len()
    }

    fn answers_now(&self) -> bool {
        self.error != 0
    }

    fn take_watch(&mut self) -> Option<watch::Receiver<i64>> {
        self.watch.take()
    }
}

impl ReadOutcome {
    fn error(code: i16) -> ReadOutcome {
        ReadOutcome {
            error: code,
            records: Bytes::new(),
            high_watermark: -1,
            log_start_offset: -1,
            watch: None,
        }
    }
}

/// Reads `reads` in order on their owning shard, within `budget` bytes in all; only
/// the first partition with data may exceed it (one whole batch).
async fn read_many(
    shard: Rc<Shard>,
    reads: Vec<(usize, Read)>,
    mut budget: usize,
) -> Vec<(usize, ReadOutcome)> {
    let mut out = Vec::with_capacity(reads.len());
    let mut min_one = true;
    for (i, mut r) in reads {
        r.max_bytes = r.max_bytes.min(budget);
        let o = read_on_owner(&shard, r, min_one).await;
        if !o.records.is_empty() {
            min_one = false;
        }
        budget = budget.saturating_sub(o.records.len());
        out.push((i, o));
    }
    out
}

async fn read_on_owner(shard: &Shard, r: Read, min_one: bool) -> ReadOutcome {
    let partition = match shard.partitions.ready(&r.topic_id, r.index).await {
        Ok(p) => p,
        Err(u) => return ReadOutcome::error(super::route::unavailable_code(&u)),
    };
    // Kafka's epoch check: a client behind the leader's epoch refreshes its metadata;
    // one ahead of it is talking to a leader that has not seen the change yet.
    if r.current_leader_epoch >= 0 {
        let epoch = partition.leader_epoch();
        if r.current_leader_epoch < epoch {
            return ReadOutcome::error(ResponseError::FencedLeaderEpoch.code());
        }
        if r.current_leader_epoch > epoch {
            return ReadOutcome::error(ResponseError::UnknownLeaderEpoch.code());
        }
    }
    let watch = Some(partition.watch_high_watermark());
    match partition.read(r.offset, r.max_bytes, min_one).await {
        Ok(f) => ReadOutcome {
            error: 0,
            records: f.records,
            high_watermark: f.high_watermark,
            log_start_offset: f.log_start_offset,
            watch,
        },
        Err(StorageError::OffsetOutOfRange {
            log_start_offset, ..
        }) => ReadOutcome {
            error: ResponseError::OffsetOutOfRange.code(),
            records: Bytes::new(),
            high_watermark: partition.high_watermark(),
            log_start_offset,
            watch: None,
        },
        Err(e) => {
            tracing::error!(topic = %partition.topic, partition = r.index, error = %e, "fetch read failed");
            ReadOutcome::error(ResponseError::KafkaStorageError.code())
        }
    }
}

pub async fn handle(
    shard: &Rc<Shard>,
    version: i16,
    client_id: Option<StrBytes>,
    req: FetchRequest,
) -> FetchResponse {
    let replica = if version >= 15 {
        req.replica_state.replica_id.0
    } else {
        req.replica_id.0
    };
    if replica >= 0 {
        let broker_epoch = if version >= 15 {
            req.replica_state.replica_epoch
        } else {
            -1
        };
        return super::fetch_follower::handle(shard, version, req, replica, broker_epoch).await;
    }
    let mut req = req;
    let ctx = match shard.fetch_sessions.borrow_mut().prepare(
        version,
        &mut req,
        std::time::Instant::now(),
    ) {
        Ok(ctx) => ctx,
        Err(code) => {
            super::count_error("Fetch", code);
            return FetchResponse::default().with_error_code(code);
        }
    };
    let image = shard.cluster.image();
    let mut max_bytes = (req.max_bytes.max(0) as i64).min(shard.config.fetch_max_bytes) as usize;
    // A consumer with a byte quota fetches at most what the quota lets through in a
    // window, as Kafka caps it.
    let quota = super::throttle::quota_for(&image, Kind::Fetch, client_id.as_deref().unwrap_or(""));
    if let Some(q) = &quota {
        let c = &shard.config;
        let window = Window::new(c.quota_window_num, c.quota_window_size_seconds);
        max_bytes = max_bytes.min(window.max_in_window(q.bound()) as usize);
        req.min_bytes = req.min_bytes.min(max_bytes.min(i32::MAX as usize) as i32);
    }
    let deadline =
        tokio::time::Instant::now() + Duration::from_millis(req.max_wait_ms.max(0) as u64);
    let slots = targets(shard, &image, version, &req, max_bytes);

    // Reads grouped by owning shard; each shard reads its partitions in request order
    // within the request's byte budget, so at most (shards x max_bytes) is read.
    let outcomes = poll_reads(shard, &slots, req.min_bytes, deadline, move |s, reads| {
        read_many(s, reads, max_bytes)
    })
    .await;

    let mut responses = topic_shells(&req);
    let mut budget = max_bytes;
    let mut first = true;
    let read_committed = req.isolation_level == 1;
    for ((t, index, slot), outcome) in slots.into_iter().zip(outcomes) {
        let o = match slot {
            Err(code) => ReadOutcome::error(code),
            Ok(_) => outcome
                .unwrap_or_else(|| ReadOutcome::error(ResponseError::UnknownServerError.code())),
        };
        let records = trim_to_budget(&o.records, budget, first);
        if !records.is_empty() {
            first = false;
        }
        budget = budget.saturating_sub(records.len());
        super::count_error("Fetch", o.error);
        let mut pd = PartitionData::default()
            .with_partition_index(index)
            .with_error_code(o.error)
            .with_high_watermark(o.high_watermark)
            .with_last_stable_offset(o.high_watermark)
            .with_log_start_offset(o.log_start_offset)
            .with_records(Some(records));
        pd.aborted_transactions = read_committed.then(Vec::new);
        responses[t].partitions.push(pd);
    }
    if let Some(q) = quota {
        // Charged the size of the response as it would be sent. Over the quota: an
        // empty answer with the throttle time (Kafka's throttled response), and nothing
        // charged since nothing was sent. A new session is not opened; an incremental
        // one keeps its id and the epoch it moved to.
        let answer = shard.fetch_sessions.borrow().preview(ctx, &req, &responses);
        let size = FetchResponse::default()
            .with_responses(answer)
            .compute_size(version)
            .unwrap_or(0);
        let ms = super::throttle::charge(shard, q, size as f64, Record::UnlessThrottled).await;
        if ms > 0 {
            let session_id = match ctx {
                Context::Incremental { id } => id,
                Context::New | Context::Sessionless => 0,
            };
            return FetchResponse::default()
                .with_throttle_time_ms(ms.min(i32::MAX as u64) as i32)
                .with_session_id(session_id);
        }
    }
    let node_endpoints = if version >= 16 {
        point_to_leaders(&image, &mut responses, version >= 13)
    } else {
        Vec::new()
    };
    let session_id = shard.fetch_sessions.borrow_mut().finish(
        ctx,
        version,
        &req,
        &mut responses,
        std::time::Instant::now(),
    );
    FetchResponse::default()
        .with_session_id(session_id)
        .with_responses(responses)
        .with_node_endpoints(node_endpoints)
}

/// KIP-951: a partition answered NOT_LEADER_OR_FOLLOWER or FENCED_LEADER_EPOCH names
/// its current leader and epoch, and the response carries those leaders' endpoints.
/// Shared with the follower side (`fetch_follower`).
pub(super) fn point_to_leaders(
    image: &ClusterImage,
    topics: &mut [FetchableTopicResponse],
    by_id: bool,
) -> Vec<NodeEndpoint> {
    let redirect = [
        ResponseError::NotLeaderOrFollower.code(),
        ResponseError::FencedLeaderEpoch.code(),
    ];
    let mut leaders = std::collections::BTreeSet::new();
    for t in topics.iter_mut() {
        let topic = if by_id {
            image.topic_by_id(&t.topic_id)
        } else {
            image.topic(t.topic.0.as_str())
        };
        for p in &mut t.partitions {
            if !redirect.contains(&p.error_code) {
                continue;
            }
            let named = super::route::current_leader(
                image,
                topic.map(|t| &**t),
                p.partition_index,
                &mut leaders,
            );
            if let Some((id, epoch)) = named {
                p.current_leader = LeaderIdAndEpoch::default()
                    .with_leader_id(BrokerId(id))
                    .with_leader_epoch(epoch);
            }
        }
    }
    super::route::endpoints(image, &leaders)
        .map(|b| {
            NodeEndpoint::default()
                .with_node_id(BrokerId(b.id))
                .with_host(StrBytes::from_string(b.host.clone()))
                .with_port(i32::from(b.port))
                .with_rack(b.rack.clone().map(StrBytes::from_string))
        })
        .collect()
}
