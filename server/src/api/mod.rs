//! Kafka APIs: one file per API, named as the kafka-protocol crate names it.
//!
//! [`APIS`] is the single table of what Fjord serves: ApiVersions is generated from
//! it and the decoder refuses anything outside it. An API is listed only when every
//! version in its range is implemented completely.

pub mod alter_configs;
pub mod api_versions;
pub mod consumer_group_describe;
pub mod consumer_group_heartbeat;
pub mod create_partitions;
pub mod create_topics;
pub mod delete_groups;
pub mod delete_records;
pub mod delete_topics;
pub mod describe_cluster;
pub mod describe_configs;
pub mod describe_groups;
pub mod describe_log_dirs;
pub mod describe_producers;
pub mod elect_leaders;
pub mod fetch;
pub mod find_coordinator;
pub mod heartbeat;
pub mod incremental_alter_configs;
pub mod init_producer_id;
pub mod join_group;
pub mod leave_group;
pub mod list_groups;
pub mod list_offsets;
pub mod metadata;
pub mod offset_commit;
pub mod offset_delete;
pub mod offset_fetch;
pub mod offset_for_leader_epoch;
pub mod produce;
pub mod route;
pub mod sync_group;

use std::rc::Rc;
use std::time::Instant;

use bytes::Bytes;
use kafka_protocol::messages::{ApiKey, RequestKind, ResponseKind};

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

const fn api(key: ApiKey, min: i16, max: i16) -> ApiSpec {
    ApiSpec {
        key,
        advertised_min: min,
        min,
        max,
    }
}

/// Every API Fjord serves.
pub const APIS: &[ApiSpec] = &[
    ApiSpec {
        key: ApiKey::Produce,
        advertised_min: 0,
        min: 3,
        max: 13,
    },
    api(ApiKey::Fetch, 4, 18),
    api(ApiKey::ListOffsets, 1, 10),
    api(ApiKey::OffsetForLeaderEpoch, 2, 4),
    api(ApiKey::Metadata, 0, 13),
    api(ApiKey::ApiVersions, 0, 4),
    api(ApiKey::CreateTopics, 2, 7),
    api(ApiKey::DeleteTopics, 1, 6),
    api(ApiKey::InitProducerId, 0, 5),
    api(ApiKey::FindCoordinator, 0, 6),
    api(ApiKey::JoinGroup, 0, 9),
    api(ApiKey::SyncGroup, 0, 5),
    api(ApiKey::Heartbeat, 0, 4),
    api(ApiKey::LeaveGroup, 0, 5),
    api(ApiKey::OffsetCommit, 2, 9),
    api(ApiKey::OffsetFetch, 1, 9),
    api(ApiKey::OffsetDelete, 0, 0),
    api(ApiKey::DescribeGroups, 0, 6),
    api(ApiKey::ListGroups, 0, 5),
    api(ApiKey::DeleteGroups, 0, 2),
    api(ApiKey::ConsumerGroupHeartbeat, 0, 1),
    api(ApiKey::ConsumerGroupDescribe, 0, 1),
    api(ApiKey::DescribeConfigs, 1, 4),
    api(ApiKey::AlterConfigs, 0, 2),
    api(ApiKey::IncrementalAlterConfigs, 0, 1),
    api(ApiKey::CreatePartitions, 0, 3),
    api(ApiKey::DeleteRecords, 0, 2),
    api(ApiKey::DescribeLogDirs, 1, 4),
    api(ApiKey::DescribeProducers, 0, 0),
    api(ApiKey::DescribeCluster, 0, 2),
    api(ApiKey::ElectLeaders, 0, 2),
];

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
pub async fn handle(shard: Rc<Shard>, req: Request) -> Reply {
    let started = Instant::now();
    let api_key = req.api_key;
    let version = req.version();
    let correlation_id = req.header.correlation_id;
    let name = api_name(api_key);
    metrics::counter!("fjord_requests_total", "api" => name).increment(1);
    let response = match req.body {
        RequestKind::ApiVersions(r) => {
            Some(ResponseKind::ApiVersions(api_versions::handle(version, r)))
        }
        RequestKind::Metadata(r) => Some(ResponseKind::Metadata(
            metadata::handle(&shard, version, r).await,
        )),
        RequestKind::Produce(r) => produce::handle(&shard, version, r, req.frame)
            .await
            .map(ResponseKind::Produce),
        RequestKind::Fetch(r) => Some(ResponseKind::Fetch(fetch::handle(&shard, version, r).await)),
        RequestKind::ListOffsets(r) => Some(ResponseKind::ListOffsets(
            list_offsets::handle(&shard, version, r).await,
        )),
        RequestKind::OffsetForLeaderEpoch(r) => Some(ResponseKind::OffsetForLeaderEpoch(
            offset_for_leader_epoch::handle(&shard, version, r).await,
        )),
        RequestKind::CreateTopics(r) => Some(ResponseKind::CreateTopics(
            create_topics::handle(&shard, version, r).await,
        )),
        RequestKind::DeleteTopics(r) => Some(ResponseKind::DeleteTopics(
            delete_topics::handle(&shard, version, r).await,
        )),
        RequestKind::InitProducerId(r) => Some(ResponseKind::InitProducerId(
            init_producer_id::handle(&shard, version, r).await,
        )),
        RequestKind::FindCoordinator(r) => Some(ResponseKind::FindCoordinator(
            find_coordinator::handle(&shard, version, r).await,
        )),
        RequestKind::JoinGroup(r) => Some(ResponseKind::JoinGroup(
            join_group::handle(&shard, version, req.header.client_id.clone(), r).await,
        )),
        RequestKind::SyncGroup(r) => Some(ResponseKind::SyncGroup(
            sync_group::handle(&shard, version, r).await,
        )),
        RequestKind::Heartbeat(r) => Some(ResponseKind::Heartbeat(
            heartbeat::handle(&shard, version, r).await,
        )),
        RequestKind::LeaveGroup(r) => Some(ResponseKind::LeaveGroup(
            leave_group::handle(&shard, version, r).await,
        )),
        RequestKind::OffsetCommit(r) => Some(ResponseKind::OffsetCommit(
            offset_commit::handle(&shard, version, r).await,
        )),
        RequestKind::OffsetFetch(r) => Some(ResponseKind::OffsetFetch(
            offset_fetch::handle(&shard, version, r).await,
        )),
        RequestKind::OffsetDelete(r) => Some(ResponseKind::OffsetDelete(
            offset_delete::handle(&shard, version, r).await,
        )),
        RequestKind::DescribeGroups(r) => Some(ResponseKind::DescribeGroups(
            describe_groups::handle(&shard, version, r).await,
        )),
        RequestKind::ListGroups(r) => Some(ResponseKind::ListGroups(
            list_groups::handle(&shard, version, r).await,
        )),
        RequestKind::DeleteGroups(r) => Some(ResponseKind::DeleteGroups(
            delete_groups::handle(&shard, version, r).await,
        )),
        RequestKind::ConsumerGroupHeartbeat(r) => Some(ResponseKind::ConsumerGroupHeartbeat(
            consumer_group_heartbeat::handle(&shard, version, req.header.client_id.clone(), r)
                .await,
        )),
        RequestKind::ConsumerGroupDescribe(r) => Some(ResponseKind::ConsumerGroupDescribe(
            consumer_group_describe::handle(&shard, version, r).await,
        )),
        RequestKind::DescribeConfigs(r) => Some(ResponseKind::DescribeConfigs(
            describe_configs::handle(&shard, version, r).await,
        )),
        RequestKind::AlterConfigs(r) => Some(ResponseKind::AlterConfigs(
            alter_configs::handle(&shard, version, r).await,
        )),
        RequestKind::IncrementalAlterConfigs(r) => Some(ResponseKind::IncrementalAlterConfigs(
            incremental_alter_configs::handle(&shard, version, r).await,
        )),
        RequestKind::CreatePartitions(r) => Some(ResponseKind::CreatePartitions(
            create_partitions::handle(&shard, version, r).await,
        )),
        RequestKind::DeleteRecords(r) => Some(ResponseKind::DeleteRecords(
            delete_records::handle(&shard, version, r).await,
        )),
        RequestKind::DescribeLogDirs(r) => Some(ResponseKind::DescribeLogDirs(
            describe_log_dirs::handle(&shard, version, r).await,
        )),
        RequestKind::DescribeProducers(r) => Some(ResponseKind::DescribeProducers(
            describe_producers::handle(&shard, version, r).await,
        )),
        RequestKind::DescribeCluster(r) => Some(ResponseKind::DescribeCluster(
            describe_cluster::handle(&shard, version, r).await,
        )),
        RequestKind::ElectLeaders(r) => Some(ResponseKind::ElectLeaders(
            elect_leaders::handle(&shard, version, r).await,
        )),
        other => {
            // The decoder only admits APIs in the table; reaching here is a table bug.
            tracing::error!(
                ?api_key,
                "no handler for {:?}",
                std::mem::discriminant(&other)
            );
            None
        }
    };
    let elapsed = started.elapsed().as_secs_f64();
    metrics::histogram!("fjord_request_latency_seconds", "api" => name).record(elapsed);
    let Some(response) = response else {
        return Reply::Nothing;
    };
    encoded(
        wire::encode_response_pieces(correlation_id, api_key, version, &response),
        name,
    )
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

/// A static name for metrics labels.
pub fn api_name(key: ApiKey) -> &'static str {
    match key {
        ApiKey::Produce => "Produce",
        ApiKey::Fetch => "Fetch",
        ApiKey::ListOffsets => "ListOffsets",
        ApiKey::OffsetForLeaderEpoch => "OffsetForLeaderEpoch",
        ApiKey::Metadata => "Metadata",
        ApiKey::ApiVersions => "ApiVersions",
        ApiKey::CreateTopics => "CreateTopics",
        ApiKey::DeleteTopics => "DeleteTopics",
        ApiKey::InitProducerId => "InitProducerId",
        ApiKey::FindCoordinator => "FindCoordinator",
        ApiKey::JoinGroup => "JoinGroup",
        ApiKey::SyncGroup => "SyncGroup",
        ApiKey::Heartbeat => "Heartbeat",
        ApiKey::LeaveGroup => "LeaveGroup",
        ApiKey::OffsetCommit => "OffsetCommit",
        ApiKey::OffsetFetch => "OffsetFetch",
        ApiKey::OffsetDelete => "OffsetDelete",
        ApiKey::DescribeGroups => "DescribeGroups",
        ApiKey::ListGroups => "ListGroups",
        ApiKey::DeleteGroups => "DeleteGroups",
        ApiKey::ConsumerGroupHeartbeat => "ConsumerGroupHeartbeat",
        ApiKey::ConsumerGroupDescribe => "ConsumerGroupDescribe",
        ApiKey::DescribeConfigs => "DescribeConfigs",
        ApiKey::AlterConfigs => "AlterConfigs",
        ApiKey::IncrementalAlterConfigs => "IncrementalAlterConfigs",
        ApiKey::CreatePartitions => "CreatePartitions",
        ApiKey::DeleteRecords => "DeleteRecords",
        ApiKey::DescribeLogDirs => "DescribeLogDirs",
        ApiKey::DescribeProducers => "DescribeProducers",
        ApiKey::DescribeCluster => "DescribeCluster",
        ApiKey::ElectLeaders => "ElectLeaders",
        _ => "Other",
    }
}

/// Counts an error code in a response, by API.
pub fn count_error(api: &'static str, code: i16) {
    if code != 0 {
        metrics::counter!("fjord_response_errors_total", "api" => api, "code" => code.to_string())
            .increment(1);
    }
}
