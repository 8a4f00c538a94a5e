//! Fetch (key 1) from a follower (a request naming a replica id): the leader's side of
//! replication. Runs on the shard that received the request; each partition is served
//! on its owner shard.
//!
//! Unlike a consumer's fetch, a follower reads up to the leader's written end, not the
//! high watermark; its fetch offset is its log end, which the leader records
//! (advancing the high watermark and the ISR); a follower whose last fetched epoch
//! ends earlier on the leader is told where it diverges instead of getting records.
//! Long polling waits for the written end of any of the partitions to move.
//!
//! A follower names its registration's broker epoch (KIP-903): a fetch in an older
//! one than the image holds — from a previous run of that broker, still in flight —
//! gets NOT_LEADER_OR_FOLLOWER for every partition and is not recorded, as Kafka's
//! leader fences it; the epoch of each recorded fetch goes with the ISR changes.

use std::rc::Rc;
use std::time::Duration;

use bytes::Bytes;
use kafka_protocol::messages::fetch_response::{EpochEndOffset, PartitionData};
use kafka_protocol::messages::{FetchRequest, FetchResponse};
use kafka_protocol::ResponseError;
use tokio::sync::watch;

use super::fetch::Read;
use crate::partition::{FollowerFetchError, Partition};
use crate::shard::Shard;

struct Outcome {
    error: i16,
    records: Bytes,
    high_watermark: i64,
    log_start_offset: i64,
    diverging: Option<(i32, i64)>,
    /// The high watermark is past the one the follower knows, which holds all of it:
    /// tell it now (KIP-1166's rule), so it never lags the committed offsets by a
    /// long poll.
    news: bool,
    watch: Option<watch::Receiver<i64>>,
}

impl super::route::Polled for Outcome {
    fn bytes(&self) -> usize {
        self.records.len()
    }

    fn answers_now(&self) -> bool {
        self.error != 0 || self.diverging.is_some() || self.news
    }

    fn take_watch(&mut self) -> Option<watch::Receiver<i64>> {
        self.watch.take()
    }
}

impl Outcome {
    fn error(code: i16) -> Outcome {
        Outcome {
            error: code,
            records: Bytes::new(),
            high_watermark: -1,
            log_start_offset: -1,
            diverging: None,
            news: false,
            watch: None,
        }
    }
}

fn follower_code(e: FollowerFetchError) -> i16 {
    match e {
        FollowerFetchError::NotLeader => ResponseError::NotLeaderOrFollower,
        FollowerFetchError::UnknownLeaderEpoch => ResponseError::UnknownLeaderEpoch,
        FollowerFetchError::FencedLeaderEpoch => ResponseError::FencedLeaderEpoch,
        FollowerFetchError::OffsetOutOfRange => ResponseError::OffsetOutOfRange,
    }
    .code()
}

/// Serves one partition on its owner shard.
async fn serve(shard: &Rc<Shard>, replica: i32, broker_epoch: i64, r: Read) -> Outcome {
    let p: Rc<Partition> = match shard.partitions.ready(&r.topic_id, r.index).await {
        Ok(p) => p,
        Err(u) => return Outcome::error(super::route::unavailable_code(&u)),
    };
    let view = match p.serve_follower(
        replica,
        broker_epoch,
        r.offset,
        r.current_leader_epoch,
        r.last_fetched_epoch,
    ) {
        Ok(v) => v,
        Err(e) => {
            let mut o = Outcome::error(follower_code(e));
            o.high_watermark = p.high_watermark();
            o.log_start_offset = p.log_start_offset();
            return o;
        }
    };
    shard.replicas.maybe_alter_isr(&p);
    // A throttled replica gets no records while the leader's rate is exceeded (its
    // fetch offset still counts above), as Kafka's leader throttle does.
    let throttle = shard.replicas.leader_throttle(&p, replica);
    let records = if view.diverging.is_some() || throttle.as_ref().is_some_and(|t| !t.allows()) {
        Bytes::new()
    } else {
        match p
            .read_for_follower(r.offset, view.read_end, r.max_bytes)
            .await
        {
            Ok(b) => {
                if let Some(t) = &throttle {
                    t.charge(b.len());
                }
                b
            }
            Err(e) => {
                tracing::error!(topic = %p.topic, partition = r.index, error = %e, "follower read failed");
                return Outcome::error(ResponseError::KafkaStorageError.code());
            }
        }
    };
    let high_watermark = p.high_watermark();
    Outcome {
        error: 0,
        records,
        high_watermark,
        log_start_offset: view.log_start_offset,
        diverging: view.diverging,
        // (Only for a follower holding everything up to it: a lagging one gets records,
        // or waits out its throttle.)
        news: high_watermark > r.known_high_watermark && r.offset >= high_watermark,
        watch: Some(p.watch_written_end()),
    }
}

async fn serve_many(
    shard: Rc<Shard>,
    replica: i32,
    broker_epoch: i64,
    reads: Vec<(usize, Read)>,
    mut budget: usize,
) -> Vec<(usize, Outcome)> {
    let mut out = Vec::with_capacity(reads.len());
    for (i, mut r) in reads {
        // At least one batch of the first partition with data, within the budget after.
        r.max_bytes = r.max_bytes.min(budget.max(1));
        let o = serve(&shard, replica, broker_epoch, r).await;
        budget = budget.saturating_sub(o.records.len());
        out.push((i, o));
    }
    out
}

pub async fn handle(
    shard: &Rc<Shard>,
    version: i16,
    req: FetchRequest,
    replica: i32,
    broker_epoch: i64,
) -> FetchResponse {
    let image = shard.cluster.image();
    let stale = broker_epoch != -1
        && image
            .alive_broker_epoch(replica)
            .is_some_and(|e| e > broker_epoch);
    let max_bytes = (req.max_bytes.max(0) as i64)
        .min(shard.config.replica_fetch_response_max_bytes.max(1)) as usize;
    let deadline =
        tokio::time::Instant::now() + Duration::from_millis(req.max_wait_ms.max(0) as u64);
    let mut slots = super::fetch::targets(shard, &image, version, &req, max_bytes);
    if stale {
        tracing::debug!(
            replica,
            broker_epoch,
            "fetch from a previous registration refused"
        );
        for (_, _, slot) in slots.iter_mut() {
            *slot = Err(ResponseError::NotLeaderOrFollower.code());
        }
    }
    let outcomes =
        super::fetch::poll_reads(shard, &slots, req.min_bytes, deadline, move |s, reads| {
            serve_many(s, replica, broker_epoch, reads, max_bytes)
        })
        .await;

    let mut responses = super::fetch::topic_shells(&req);
    let mut budget = max_bytes;
    let mut first = true;
    for ((t, index, slot), outcome) in slots.into_iter().zip(outcomes) {
        let o = match slot {
            Err(code) => Outcome::error(code),
            Ok(_) => {
                outcome.unwrap_or_else(|| Outcome::error(ResponseError::NotLeaderOrFollower.code()))
            }
        };
        let records = crate::partition::trim_to_budget(&o.records, budget, first);
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
        if let Some((epoch, end)) = o.diverging {
            pd.diverging_epoch = EpochEndOffset::default()
                .with_epoch(epoch)
                .with_end_offset(end);
        }
        responses[t].partitions.push(pd);
    }
    let node_endpoints =
        super::fetch::point_to_leaders(&shard.cluster.image(), &mut responses, version >= 13);
    FetchResponse::default()
        .with_session_id(0)
        .with_responses(responses)
        .with_node_endpoints(node_endpoints)
}
