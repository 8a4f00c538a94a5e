//! Client quotas on the request path, as Kafka applies them: Produce is charged its
//! request size, a consumer Fetch its response size (`fetch`), every request its
//! handling time against `request_percentage`; a client over a quota gets its
//! response with `throttle_time_ms` set, and its connection reads nothing more until
//! that time has passed (KIP-219; for response versions older than client-side
//! throttling the response itself waits).
//!
//! Which quota applies is `metadata::client_quotas::resolve`; each sensor has a home
//! shard (a hash of its key) that measures it for every connection, so the charge is
//! an `invoke_on` there. With no client quota in the image nothing here runs.
//!
//! Exempt, as in Kafka: followers' fetches. Request time is the time this shard spent
//! polling the handler; work it waited for on other shards is not counted.

use std::future::Future;
use std::hash::{Hash, Hasher};
use std::pin::Pin;
use std::rc::Rc;
use std::sync::OnceLock;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use kafka_protocol::messages::*;

use crate::metadata::client_quotas::{
    resolve, ANONYMOUS, CONSUMER_BYTE_RATE, PRODUCER_BYTE_RATE, REQUEST_PERCENTAGE,
};
use crate::metadata::ClusterImage;
use crate::quota::{Kind, Record, SensorKey};
use crate::shard::Shard;

/// A quota that applies: its bound and the sensor it is measured on.
pub struct Quota {
    key: SensorKey,
    bound: f64,
}

impl Quota {
    /// The bound (bytes per second, or percent).
    pub fn bound(&self) -> f64 {
        self.bound
    }
}

/// The quota of `kind` for client `client_id` under `image`, if one is set.
pub fn quota_for(image: &ClusterImage, kind: Kind, client_id: &str) -> Option<Quota> {
    if image.client_quotas.is_empty() {
        return None;
    }
    let key = match kind {
        Kind::Produce => PRODUCER_BYTE_RATE,
        Kind::Fetch => CONSUMER_BYTE_RATE,
        Kind::Request => REQUEST_PERCENTAGE,
    };
    let (bound, user, client) = resolve(&image.client_quotas, ANONYMOUS, client_id, key)?;
    Some(Quota {
        key: (kind, user, client),
        bound,
    })
}

/// Milliseconds on one clock shared by every shard.
fn now_ms() -> u64 {
    static START: OnceLock<Instant> = OnceLock::new();
    START.get_or_init(Instant::now).elapsed().as_millis() as u64
}

/// Records `value` on the quota's sensor, on its home shard; the throttle time in ms
/// (0 within quota).
pub async fn charge(shard: &Rc<Shard>, q: Quota, value: f64, how: Record) -> u64 {
    let mut h = std::collections::hash_map::DefaultHasher::new();
    q.key.hash(&mut h);
    let home = (h.finish() % shard.count() as u64) as usize;
    // Kafka caps a request-time throttle at one span; byte-rate throttles are not capped.
    let cap = (q.key.0 == Kind::Request).then(|| shard.config.quota_window_size_seconds);
    let now = now_ms();
    shard
        .invoke_on(home, move |s| async move {
            let cap = cap.map(|c| (c.max(1) as u64).saturating_mul(1000));
            s.quotas
                .borrow_mut()
                .record(q.key, q.bound, value, how, cap, now)
        })
        .await
        .unwrap_or(0)
}

/// A future with the time spent polling it.
pub struct Timed<F> {
    inner: Pin<Box<F>>,
    busy: Duration,
}

impl<F: Future> Timed<F> {
    pub fn new(inner: F) -> Timed<F> {
        Timed {
            inner: Box::pin(inner),
            busy: Duration::ZERO,
        }
    }
}

impl<F: Future> Future for Timed<F> {
    type Output = (F::Output, Duration);

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let started = Instant::now();
        let polled = self.inner.as_mut().poll(cx);
        self.busy += started.elapsed();
        polled.map(|out| (out, self.busy))
    }
}

/// Request time as Kafka charges it to `request_percentage`: percent of one second.
pub fn percent_of_second(busy: Duration) -> f64 {
    busy.as_nanos() as f64 * 100.0 / 1e9
}

/// A response's `throttle_time_ms`.
pub trait ThrottleTime {
    fn throttle_time_ms(&self) -> i32;
    fn set_throttle_time_ms(&mut self, ms: i32);
}

macro_rules! throttle_time {
    ($($t:ident),* $(,)?) => {$(
        impl ThrottleTime for $t {
            fn throttle_time_ms(&self) -> i32 {
                self.throttle_time_ms
            }
            fn set_throttle_time_ms(&mut self, ms: i32) {
                self.throttle_time_ms = ms;
            }
        }
    )*};
}

throttle_time!(
    ProduceResponse,
    FetchResponse,
    ListOffsetsResponse,
    OffsetForLeaderEpochResponse,
    MetadataResponse,
    ApiVersionsResponse,
    CreateTopicsResponse,
    DeleteTopicsResponse,
    InitProducerIdResponse,
    FindCoordinatorResponse,
    JoinGroupResponse,
    SyncGroupResponse,
    HeartbeatResponse,
    LeaveGroupResponse,
    OffsetCommitResponse,
    OffsetFetchResponse,
    OffsetDeleteResponse,
    DescribeGroupsResponse,
    ListGroupsResponse,
    DeleteGroupsResponse,
    ConsumerGroupHeartbeatResponse,
    ConsumerGroupDescribeResponse,
    DescribeConfigsResponse,
    AlterConfigsResponse,
    IncrementalAlterConfigsResponse,
    CreatePartitionsResponse,
    DeleteRecordsResponse,
    DescribeLogDirsResponse,
    DescribeProducersResponse,
    DescribeClusterResponse,
    ElectLeadersResponse,
    AlterPartitionReassignmentsResponse,
    ListPartitionReassignmentsResponse,
    DescribeTopicPartitionsResponse,
    UnregisterBrokerResponse,
    ListConfigResourcesResponse,
    DescribeClientQuotasResponse,
    AlterClientQuotasResponse,
);

/// DescribeQuorum's response has no throttle time: the throttle only mutes.
impl ThrottleTime for DescribeQuorumResponse {
    fn throttle_time_ms(&self) -> i32 {
        0
    }
    fn set_throttle_time_ms(&mut self, _ms: i32) {}
}

/// Whether the client of `key` at `version` throttles itself (KIP-219), so the
/// response goes out at once; otherwise it waits out the throttle. Kafka's
/// `shouldClientThrottle` of each response.
pub fn client_throttles(key: ApiKey, version: i16) -> bool {
    use ApiKey::*;
    let from = match key {
        Produce => 6,
        Fetch => 8,
        Metadata => 6,
        ListOffsets => 3,
        CreateTopics => 3,
        DeleteTopics | ApiVersions | FindCoordinator | Heartbeat | LeaveGroup | ListGroups
        | SyncGroup | DescribeGroups | DescribeConfigs => 2,
        JoinGroup => 3,
        OffsetCommit | OffsetFetch => 4,
        InitProducerId | AlterConfigs | CreatePartitions | DeleteRecords | DescribeLogDirs
        | DeleteGroups => 1,
        IncrementalAlterConfigs
        | OffsetDelete
        | AlterPartitionReassignments
        | ListPartitionReassignments
        | DescribeTopicPartitions
        | ElectLeaders
        | UnregisterBroker => 0,
        _ => return false,
    };
    version >= from
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_before_kip_219_are_throttled_by_the_broker() {
        assert!(!client_throttles(ApiKey::Produce, 5));
        assert!(client_throttles(ApiKey::Produce, 6));
        assert!(!client_throttles(ApiKey::Fetch, 7));
        assert!(client_throttles(ApiKey::ElectLeaders, 0));
        assert!(!client_throttles(ApiKey::DescribeCluster, 1));
    }

    #[test]
    fn request_time_is_a_percentage_of_a_second() {
        assert_eq!(percent_of_second(Duration::from_millis(10)), 1.0);
    }
}
