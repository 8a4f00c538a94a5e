//! Shared by the per-partition APIs (ListOffsets, OffsetForLeaderEpoch, DeleteRecords,
//! DescribeProducers): run a step on each partition's owner shard (synchronous, or
//! awaiting disk reads for ListOffsets) and answer in request order; and the error
//! codes of partitions an owner cannot serve; Fetch's long poll (consumers and
//! followers).
//!
//! Runs on the shard that received the request; `work` runs on the owner shards.

use std::collections::BTreeSet;
use std::rc::Rc;

use kafka_protocol::ResponseError;
use tokio::sync::{mpsc, watch};
use uuid::Uuid;

use crate::metadata::{BrokerInfo, ClusterImage, TopicImage};

use crate::partition::registry::Unavailable;
use crate::partition::Partition;
use crate::shard::Shard;

/// Kafka's error code for a partition its owner cannot serve now.
pub fn unavailable_code(u: &Unavailable) -> i16 {
    match u {
        Unavailable::Unknown => ResponseError::UnknownTopicOrPartition.code(),
        Unavailable::Opening | Unavailable::NotLeader => ResponseError::NotLeaderOrFollower.code(),
        Unavailable::Offline(_) => ResponseError::KafkaStorageError.code(),
    }
}

/// A request partition after the API's own checks: (topic id, partition, argument) to
/// answer on its owner, or the error code it gets without going there.
pub type Target<A> = Result<(Uuid, i32, A), i16>;

/// Runs `work(partition, argument)` for every `Ok` target on the shard owning that
/// partition, all shards at once, and returns one answer per target, in input order.
/// [`on_owners_async`] is the same for work that awaits (disk reads).
/// A target that came in as `Err(code)` answers `Err(code)`; a partition its owner
/// cannot serve answers [`unavailable_code`], and one whose shard stopped
/// NOT_LEADER_OR_FOLLOWER.
pub async fn on_owners<A, R, F>(
    shard: &Rc<Shard>,
    targets: Vec<Target<A>>,
    work: F,
) -> Vec<Result<R, i16>>
where
    A: Send + 'static,
    R: Send + 'static,
    F: Fn(&Partition, A) -> Result<R, i16> + Send + Clone + 'static,
{
    on_owners_async(shard, targets, move |p, arg| {
        std::future::ready(work(&p, arg))
    })
    .await
}

/// [`on_owners`] for work that awaits.
pub async fn on_owners_async<A, R, F, Fut>(
    shard: &Rc<Shard>,
    targets: Vec<Target<A>>,
    work: F,
) -> Vec<Result<R, i16>>
where
    A: Send + 'static,
    R: Send + 'static,
    F: Fn(Rc<Partition>, A) -> Fut + Send + Clone + 'static,
    Fut: std::future::Future<Output = Result<R, i16>> + 'static,
{
    let gone = ResponseError::NotLeaderOrFollower.code();
    let mut answers: Vec<Result<R, i16>> = Vec::with_capacity(targets.len());
    let mut routed = Vec::new();
    for (i, target) in targets.into_iter().enumerate() {
        match target {
            Ok((id, index, arg)) => {
                routed.push((shard.owner(&id, index), (i, id, index, arg)));
                answers.push(Err(gone));
            }
            Err(code) => answers.push(Err(code)),
        }
    }
    let done = shard
        .scatter(
            routed,
            move |s: Rc<Shard>, (i, id, index, arg): (usize, Uuid, i32, A)| {
                let work = work.clone();
                async move {
                    let answer = match s.partitions.ready(&id, index).await {
                        Ok(p) => work(p, arg).await,
                        Err(u) => Err(unavailable_code(&u)),
                    };
                    (i, answer)
                }
            },
            move || (usize::MAX, Err(gone)),
        )
        .await;
    for (i, answer) in done {
        if let Some(slot) = answers.get_mut(i) {
            *slot = answer;
        }
    }
    answers
}

/// One partition's read in a long-polled Fetch (a consumer's or a follower's).
pub trait Polled {
    /// The bytes read.
    fn bytes(&self) -> usize;
    /// Whether the fetch answers at once (an error, a divergence).
    fn answers_now(&self) -> bool;
    /// The partition's watch of its readable end, to wait on.
    fn take_watch(&mut self) -> Option<watch::Receiver<i64>>;
}

/// Kafka's Fetch long poll: runs `round` (each routed partition read once, as
/// (request slot, outcome)) until `min_bytes` are read, an outcome answers at once, a
/// round has nothing to read, or `deadline` passes; between rounds it waits for any
/// partition's end to move. Returns the last round's outcomes by slot (`slots` many).
pub async fn long_poll<O, F, Fut>(
    slots: usize,
    min_bytes: usize,
    deadline: tokio::time::Instant,
    mut round: F,
) -> Vec<Option<O>>
where
    O: Polled,
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Vec<(usize, O)>>,
{
    loop {
        let mut outcomes: Vec<Option<O>> = (0..slots).map(|_| None).collect();
        let (mut bytes, mut now, mut read) = (0usize, false, false);
        for (slot, o) in round().await {
            read = true;
            bytes += o.bytes();
            now |= o.answers_now();
            if let Some(s) = outcomes.get_mut(slot) {
                *s = Some(o);
            }
        }
        if bytes >= min_bytes.max(1) || now || !read || tokio::time::Instant::now() >= deadline {
            return outcomes;
        }
        let watches: Vec<watch::Receiver<i64>> = outcomes
            .iter_mut()
            .filter_map(|o| o.as_mut().and_then(Polled::take_watch))
            .collect();
        // Woken or timed out, read again: the loop ends at the deadline.
        wait_for_data(watches, deadline).await;
    }
}

/// Long polling (Fetch): waits until any watched offset moves or the deadline passes.
pub async fn wait_for_data(watches: Vec<watch::Receiver<i64>>, deadline: tokio::time::Instant) {
    if watches.is_empty() {
        tokio::time::sleep_until(deadline).await;
        return;
    }
    let (tx, mut rx) = mpsc::channel::<()>(1);
    let waiters: Vec<_> = watches
        .into_iter()
        .map(|mut w| {
            let tx = tx.clone();
            tokio::spawn(async move {
                if w.changed().await.is_ok() {
                    let _ = tx.try_send(());
                }
            })
        })
        .collect();
    drop(tx);
    let _ = tokio::time::timeout_at(deadline, rx.recv()).await;
    for w in waiters {
        w.abort();
    }
}

/// KIP-951: the live leader (id, epoch) of partition `index` of `topic`, to name in a
/// NOT_LEADER_OR_FOLLOWER (or FENCED_LEADER_EPOCH) answer; `leaders` collects the ids
/// whose endpoints the response carries.
pub fn current_leader(
    image: &ClusterImage,
    topic: Option<&TopicImage>,
    index: i32,
    leaders: &mut BTreeSet<i32>,
) -> Option<(i32, i32)> {
    let p = usize::try_from(index)
        .ok()
        .and_then(|i| topic?.partitions.get(i))?;
    image.is_live(p.leader).then(|| {
        leaders.insert(p.leader);
        (p.leader, p.leader_epoch)
    })
}

/// The registered brokers among `leaders`, for a response's node endpoints.
pub fn endpoints<'a>(
    image: &'a ClusterImage,
    leaders: &'a BTreeSet<i32>,
) -> impl Iterator<Item = &'a BrokerInfo> + 'a {
    leaders.iter().filter_map(|id| image.brokers.get(id))
}
