//! Kafka APIs: one file per API, named as the kafka-protocol crate names it.
//!
//! The `served_apis!` invocation below is the single table of what Fjord serves, one
//! line per API: [`APIS`] (from which ApiVersions is generated and by which the
//! decoder refuses anything else), the dispatch to handlers and the metrics names
//! all come from it. An API is listed only when every version in its range is
//! implemented completely.

pub mod alter_client_quotas;
pub mod alter_configs;
pub mod alter_partition_reassignments;
pub mod api_versions;
pub mod consumer_group_describe;
pub mod consumer_group_heartbeat;
pub mod create_partitions;
pub mod create_topics;
pub mod delete_groups;
pub mod delete_records;
pub mod delete_topics;
pub mod describe_client_quotas;
pub mod describe_cluster;
pub mod describe_configs;
pub mod describe_groups;
pub mod describe_log_dirs;
pub mod describe_producers;
pub mod describe_quorum;
pub mod describe_topic_partitions;
pub mod elect_leaders;
pub mod fetch;
pub mod fetch_follower;
pub mod find_coordinator;
pub mod heartbeat;
pub mod incremental_alter_configs;
pub mod init_producer_id;
pub mod join_group;
pub mod leave_group;
pub mod list_config_resources;
pub mod list_groups;
pub mod list_offsets;
pub mod list_partition_reassignments;
pub mod metadata;
pub mod offset_commit;
pub mod offset_delete;
pub mod offset_fetch;
pub mod offset_for_leader_epoch;
pub mod produce;
pub mod route;
pub mod sync_group;
pub mod throttle;
pub mod unregister_broker;

use std::rc::Rc;
use std::time::Instant;

use bytes::Bytes;
use kafka_protocol::messages::{ApiKey, RequestKind, ResponseKind};

use crate::quota;
use crate::shard::Shard;
use crate::wire::{self, Request};

/// One served API: the versions advertised and the versions accepted.
pub struct ApiSpec {
    pub key: ApiKey,
    /// Lowest version advertised in ApiVersions.
    pub advertised_min: i16,
    /// Lowest version actually served (Kafka 4 advertises Produce from 0 but serves
    /// from 3, so clients keep their codecs; see KAFKA-18659).
    pub min: i16,
    pub max: i16,
}

/// Builds, from one line per API, the table [`APIS`], the metrics name
/// [`api_name`] and the dispatch `serve`. A line is
/// `Key: advertised_min, min, max => module(shape)`, where `Key` is the
/// kafka-protocol `ApiKey`/`RequestKind`/`ResponseKind` variant and the shape says
/// how `module::handle` is called (see `call_handler!`).
macro_rules! served_apis {
    ($($key:ident: $advertised_min:literal, $min:literal, $max:literal
        => $module:ident $(($shape:ident))?,)*) => {
        /// Every API Fjord serves.
        pub const APIS: &[ApiSpec] = &[$(ApiSpec {
            key: ApiKey::$key,
            advertised_min: $advertised_min,
            min: $min,
            max: $max,
        },)*];

        /// A static name for metrics labels ("Other" for an API not served).
        pub fn api_name(key: ApiKey) -> &'static str {
            match key {
                $(ApiKey::$key => stringify!($key),)*
                _ => "Other",
            }
        }

        /// The response's `throttle_time_ms` (None for an API not served).
        fn throttle_field(resp: &mut ResponseKind) -> Option<&mut dyn throttle::ThrottleTime> {
            match resp {
                $(ResponseKind::$key(r) => Some(r),)*
                _ => None,
            }
        }

        /// Runs the handler of `req` (None: no response, e.g. acks=0).
        async fn serve(shard: &Rc<Shard>, version: i16, req: Request) -> Option<ResponseKind> {
            match req.body {
                $(RequestKind::$key(body) => {
                    call_handler!(($($shape)?) $key, $module, shard, version, body, req)
                })*
                other => {
                    // The decoder only admits APIs in the table; reaching here is a table bug.
                    tracing::error!(
                        api_key = ?req.api_key,
                        "no handler for {:?}",
                        std::mem::discriminant(&other)
                    );
                    None
                }
            }
        }
    };
}

/// One handler call, by shape: `()` is `handle(shard, version, body).await`;
/// `(sync)` is `handle(version, body)`; `(frame)` also passes the request frame and
/// returns an Option; `(client_id)` passes the client id before the body.
macro_rules! call_handler {
    (() $key:ident, $m:ident, $shard:ident, $version:ident, $body:ident, $req:ident) => {
        Some(ResponseKind::$key(
            $m::handle($shard, $version, $body).await,
        ))
    };
    ((sync) $key:ident, $m:ident, $shard:ident, $version:ident, $body:ident, $req:ident) => {
        Some(ResponseKind::$key($m::handle($version, $body)))
    };
    ((frame) $key:ident, $m:ident, $shard:ident, $version:ident, $body:ident, $req:ident) => {
        $m::handle($shard, $version, $body, $req.frame)
            .await
            .map(ResponseKind::$key)
    };
    ((client_id) $key:ident, $m:ident, $shard:ident, $version:ident, $body:ident, $req:ident) => {
        Some(ResponseKind::$key(
            $m::handle($shard, $version, $req.header.client_id.clone(), $body).await,
        ))
    };
}

// The one list of served APIs. Adding an API is adding its line here.
served_apis! {
    // key:                   advertised min, min, max => handler
    Produce:                  0, 3, 13 => produce(frame),
    Fetch:                    4, 4, 18 => fetch(client_id),
    ListOffsets:              1, 1, 10 => list_offsets,
    OffsetForLeaderEpoch:     2, 2, 4  => offset_for_leader_epoch,
    Metadata:                 0, 0, 13 => metadata,
    ApiVersions:              0, 0, 4  => api_versions(sync),
    CreateTopics:             2, 2, 7  => create_topics,
    DeleteTopics:             1, 1, 6  => delete_topics,
    InitProducerId:           0, 0, 5  => init_producer_id,
    FindCoordinator:          0, 0, 6  => find_coordinator,
    JoinGroup:                0, 0, 9  => join_group(client_id),
    SyncGroup:                0, 0, 5  => sync_group,
    Heartbeat:                0, 0, 4  => heartbeat,
    LeaveGroup:               0, 0, 5  => leave_group,
    OffsetCommit:             2, 2, 9  => offset_commit,
    OffsetFetch:              1, 1, 9  => offset_fetch,
    OffsetDelete:             0, 0, 0  => offset_delete,
    DescribeGroups:           0, 0, 6  => describe_groups,
    ListGroups:               0, 0, 5  => list_groups,
    DeleteGroups:             0, 0, 2  => delete_groups,
    ConsumerGroupHeartbeat:   0, 0, 1  => consumer_group_heartbeat(client_id),
    ConsumerGroupDescribe:    0, 0, 1  => consumer_group_describe,
    DescribeConfigs:          1, 1, 4  => describe_configs,
    AlterConfigs:             0, 0, 2  => alter_configs,
    IncrementalAlterConfigs:  0, 0, 1  => incremental_alter_configs,
    CreatePartitions:         0, 0, 3  => create_partitions,
    DeleteRecords:            0, 0, 2  => delete_records,
    DescribeLogDirs:          1, 1, 4  => describe_log_dirs,
    DescribeProducers:        0, 0, 0  => describe_producers,
    DescribeCluster:          0, 0, 2  => describe_cluster,
    ElectLeaders:             0, 0, 2  => elect_leaders,
    AlterPartitionReassignments: 0, 0, 1 => alter_partition_reassignments,
    ListPartitionReassignments: 0, 0, 0 => list_partition_reassignments,
    DescribeTopicPartitions:  0, 0, 0  => describe_topic_partitions,
    UnregisterBroker:         0, 0, 0  => unregister_broker,
    DescribeQuorum:           0, 0, 2  => describe_quorum,
    ListConfigResources:      0, 0, 1  => list_config_resources,
    DescribeClientQuotas:     0, 0, 1  => describe_client_quotas,
    AlterClientQuotas:        0, 0, 1  => alter_client_quotas,
}

tokio::task_local! {
    /// The client's address, set by the connection loop around each request.
    pub static CLIENT_ADDR: std::net::SocketAddr;
}

/// The client's host as Kafka reports it in group descriptions ("/127.0.0.1").
pub fn client_host() -> String {
    CLIENT_ADDR
        .try_with(|a| format!("/{}", a.ip()))
        .unwrap_or_default()
}

/// The versions the decoder accepts for `key`, or None if the API is not served.
pub fn accepted_versions(key: ApiKey) -> Option<(i16, i16)> {
    APIS.iter().find(|a| a.key == key).map(|a| (a.min, a.max))
}

/// Runs one request and encodes its response (None: no response, e.g. acks=0).
/// With client quotas in the image, the request is charged to them
/// ([`throttle`]) and a throttled response carries its throttle time.
pub async fn handle(shard: Rc<Shard>, req: Request) -> Reply {
    let started = Instant::now();
    let api_key = req.api_key;
    let version = req.version();
    let correlation_id = req.header.correlation_id;
    let name = api_name(api_key);
    metrics::counter!("fjord_requests_total", "api" => name).increment(1);
    let image = shard.cluster.image();
    let quotas = !image.client_quotas.is_empty() && !from_follower(&req);
    let (response, throttle_ms) = if quotas {
        let client_id = req.header.client_id.as_deref().unwrap_or("").to_string();
        let size = req.frame.as_ref().map_or(0, Bytes::len);
        let (mut response, busy) = throttle::Timed::new(serve(&shard, version, req)).await;
        let mut ms = 0;
        if api_key == ApiKey::Produce {
            if let Some(q) = throttle::quota_for(&image, quota::Kind::Produce, &client_id) {
                ms = throttle::charge(&shard, q, size as f64, quota::Record::Always).await;
            }
        }
        if let Some(q) = throttle::quota_for(&image, quota::Kind::Request, &client_id) {
            let used = throttle::percent_of_second(busy);
            let request_ms = throttle::charge(&shard, q, used, quota::Record::Always).await;
            ms = ms.max(request_ms);
        }
        // A Fetch over its byte quota set its own throttle time.
        if let Some(field) = response.as_mut().and_then(throttle_field) {
            ms = ms.max(field.throttle_time_ms().max(0) as u64);
            field.set_throttle_time_ms(ms.min(i32::MAX as u64) as i32);
        }
        if ms > 0 {
            metrics::counter!("fjord_throttled_responses_total", "api" => name).increment(1);
        }
        (response, ms)
    } else {
        (serve(&shard, version, req).await, 0)
    };
    let elapsed = started.elapsed().as_secs_f64();
    metrics::histogram!("fjord_request_latency_seconds", "api" => name).record(elapsed);
    let reply = match response {
        None => Reply::Nothing,
        Some(response) => encoded(
            wire::encode_response_pieces(correlation_id, api_key, version, &response),
            name,
        ),
    };
    match reply {
        _ if throttle_ms == 0 => reply,
        Reply::Close => Reply::Close,
        Reply::Send(pieces) => Reply::Throttled {
            pieces: Some(pieces),
            ms: throttle_ms,
            at_once: throttle::client_throttles(api_key, version),
        },
        Reply::Nothing | Reply::Throttled { .. } => Reply::Throttled {
            pieces: None,
            ms: throttle_ms,
            at_once: true,
        },
    }
}

/// A follower's Fetch: exempt from client quotas.
fn from_follower(req: &Request) -> bool {
    match &req.body {
        RequestKind::Fetch(f) if req.version() >= 15 => f.replica_state.replica_id.0 >= 0,
        RequestKind::Fetch(f) => f.replica_id.0 >= 0,
        _ => false,
    }
}

/// What the connection does once a request has run.
pub enum Reply {
    /// Write these pieces, in order (together a whole response frame).
    Send(Vec<Bytes>),
    /// No response (acks=0).
    Nothing,
    /// The response could not be encoded: close the connection so the client fails
    /// fast instead of waiting out its request timeout.
    Close,
    /// A client over its quota: the response (None: acks=0, no response) goes out at
    /// once when the client throttles itself (`at_once`), else after `ms`; either
    /// way the connection reads no further request until `ms` have passed.
    Throttled {
        pieces: Option<Vec<Bytes>>,
        ms: u64,
        at_once: bool,
    },
}

fn encoded(result: anyhow::Result<Vec<Bytes>>, api: &'static str) -> Reply {
    match result {
        Ok(pieces) => Reply::Send(pieces),
        Err(e) => {
            metrics::counter!("fjord_request_errors_total", "api" => api).increment(1);
            tracing::error!(api, error = %e, "cannot encode response; closing the connection");
            Reply::Close
        }
    }
}

/// Counts an error code in a response, by API.
pub fn count_error(api: &'static str, code: i16) {
    if code != 0 {
        metrics::counter!("fjord_response_errors_total", "api" => api, "code" => code.to_string())
            .increment(1);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_table_entry_is_named_once_and_decodable() {
        for (i, a) in APIS.iter().enumerate() {
            let name = api_name(a.key);
            assert_ne!(name, "Other", "{:?} has no name", a.key);
            assert!(
                APIS[i + 1..]
                    .iter()
                    .all(|b| b.key != a.key && api_name(b.key) != name),
                "{name} is listed twice"
            );
            assert!(
                a.advertised_min <= a.min && a.min <= a.max,
                "{name}: versions out of order"
            );
            assert_eq!(accepted_versions(a.key), Some((a.min, a.max)), "{name}");
            let codec = a.key.valid_versions();
            assert!(
                codec.min <= a.min && a.max <= codec.max,
                "{name}: accepts versions the codec cannot decode"
            );
        }
        assert_eq!(api_name(ApiKey::SaslHandshake), "Other");
        assert_eq!(accepted_versions(ApiKey::SaslHandshake), None);
    }
}
