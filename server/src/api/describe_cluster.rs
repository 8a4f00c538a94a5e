//! DescribeCluster (key 60), versions 0–2: cluster id, controller and brokers, as a
//! Kafka broker answers it. A broker listener answers only for endpoint type BROKER
//! (1); asking it for controllers gets MISMATCHED_ENDPOINT_TYPE, as in Kafka. The
//! controller is the Raft leader (-1 while none is elected); fenced brokers are
//! listed only when v2's `include_fenced_brokers` asks, flagged `is_fenced`.

use std::rc::Rc;

use kafka_protocol::messages::describe_cluster_response::DescribeClusterBroker;
use kafka_protocol::messages::{BrokerId, DescribeClusterRequest, DescribeClusterResponse};
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::ResponseError;

use crate::shard::Shard;

const ENDPOINT_BROKER: i8 = 1;

/// Every operation on the CLUSTER resource (no authorizer: all are allowed): CREATE,
/// ALTER, DESCRIBE, CLUSTER_ACTION, DESCRIBE_CONFIGS, ALTER_CONFIGS, IDEMPOTENT_WRITE.
const CLUSTER_OPERATIONS_ALL: i32 =
    (1 << 5) | (1 << 7) | (1 << 8) | (1 << 9) | (1 << 10) | (1 << 11) | (1 << 12);

pub async fn handle(
    shard: &Rc<Shard>,
    version: i16,
    req: DescribeClusterRequest,
) -> DescribeClusterResponse {
    let endpoint = if version >= 1 {
        req.endpoint_type
    } else {
        ENDPOINT_BROKER
    };
    let mut resp = DescribeClusterResponse::default()
        .with_endpoint_type(endpoint)
        .with_cluster_id(StrBytes::from_string(shard.config.cluster_id.clone()))
        .with_controller_id(BrokerId(-1))
        .with_cluster_authorized_operations(i32::MIN);
    if endpoint != ENDPOINT_BROKER {
        resp.error_code = ResponseError::MismatchedEndpointType.code();
        resp.error_message = Some(StrBytes::from_static_str(
            "The request was sent to an endpoint of type BROKER, but we wanted an endpoint of type CONTROLLER",
        ));
        super::count_error("DescribeCluster", resp.error_code);
        return resp;
    }
    let image = shard.cluster.image();
    resp.controller_id = BrokerId(shard.metadata.controller_id().unwrap_or(-1));
    resp.brokers = image
        .brokers
        .values()
        .filter(|b| req.include_fenced_brokers || image.is_live(b.id))
        .map(|b| {
            DescribeClusterBroker::default()
                .with_broker_id(BrokerId(b.id))
                .with_host(StrBytes::from_string(b.host.clone()))
                .with_port(b.port as i32)
                .with_rack(b.rack.clone().map(StrBytes::from_string))
                .with_is_fenced(!image.is_live(b.id))
        })
        .collect();
    if req.include_cluster_authorized_operations {
        resp.cluster_authorized_operations = CLUSTER_OPERATIONS_ALL;
    }
    resp
}
