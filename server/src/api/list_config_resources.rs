//! ListConfigResources (key 74), versions 0–1 (KIP-1000 named it
//! ListClientMetricsResources; KIP-1142 widened it): the resources that have configs,
//! for `Admin.listConfigResources` and `kafka-configs --describe` without a name.
//!
//! As Kafka answers: v0 lists client-metrics subscriptions only; v1 lists the types
//! asked for (every type when none is named), in Kafka's fixed order GROUP,
//! CLIENT_METRICS, BROKER_LOGGER, BROKER, TOPIC whatever the order asked. A type
//! outside those five fails the whole request with UNSUPPORTED_VERSION. Brokers are
//! the live (registered, unfenced) ones; topics are every topic, internal ones
//! included. Fjord keeps no group configs, client-metrics subscriptions or broker
//! loggers (it logs through `tracing`), so those types list nothing — which is what
//! DescribeConfigs and AlterConfigs say of them too.

use std::rc::Rc;

use kafka_protocol::messages::list_config_resources_response::ConfigResource;
use kafka_protocol::messages::{ListConfigResourcesRequest, ListConfigResourcesResponse};
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::ResponseError;

use super::describe_configs::{RESOURCE_BROKER, RESOURCE_BROKER_LOGGER, RESOURCE_TOPIC};
use crate::metadata::ClusterImage;
use crate::shard::Shard;

/// Kafka's `ConfigResource.Type` ids of the types only v1 adds besides these.
pub const RESOURCE_CLIENT_METRICS: i8 = 16;
pub const RESOURCE_GROUP: i8 = 32;

/// The types v1 lists, in the order Kafka answers them.
const ORDER: [i8; 5] = [
    RESOURCE_GROUP,
    RESOURCE_CLIENT_METRICS,
    RESOURCE_BROKER_LOGGER,
    RESOURCE_BROKER,
    RESOURCE_TOPIC,
];

pub async fn handle(
    shard: &Rc<Shard>,
    version: i16,
    req: ListConfigResourcesRequest,
) -> ListConfigResourcesResponse {
    list(&shard.cluster.image(), version, &req.resource_types)
}

/// The answer for `requested` types under `image`. Pure.
pub fn list(image: &ClusterImage, version: i16, requested: &[i8]) -> ListConfigResourcesResponse {
    if requested.iter().any(|t| !ORDER.contains(t)) {
        return ListConfigResourcesResponse::default()
            .with_error_code(ResponseError::UnsupportedVersion.code());
    }
    let wanted = |t: i8| {
        if version == 0 {
            t == RESOURCE_CLIENT_METRICS
        } else {
            requested.is_empty() || requested.contains(&t)
        }
    };
    let row = |resource_type: i8, name: String| {
        ConfigResource::default()
            .with_resource_name(StrBytes::from_string(name))
            .with_resource_type(resource_type)
    };
    let mut resources = Vec::new();
    for t in ORDER.into_iter().filter(|&t| wanted(t)) {
        match t {
            RESOURCE_BROKER => {
                resources.extend(image.live_brokers().map(|b| row(t, b.id.to_string())));
            }
            RESOURCE_TOPIC => resources.extend(image.topics.keys().map(|n| row(t, n.clone()))),
            // No group configs, client-metrics subscriptions or broker loggers exist.
            _ => {}
        }
    }
    ListConfigResourcesResponse::default().with_config_resources(resources)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metadata::{BrokerInfo, Command};

    fn image() -> ClusterImage {
        let mut image = ClusterImage::default();
        let commands = [2, 1]
            .map(|id| {
                Command::RegisterBroker(BrokerInfo {
                    id,
                    host: "h".into(),
                    port: 1,
                    rack: None,
                })
            })
            .into_iter()
            .chain(std::iter::once(Command::CreateTopic {
                name: "t".into(),
                id: uuid::Uuid::from_u128(1),
                partitions: vec![vec![1]],
                configs: Default::default(),
            }));
        for (i, cmd) in commands.enumerate() {
            image.apply(i as u64 + 1, &cmd).expect("applies");
        }
        image
    }

    fn rows(resp: &ListConfigResourcesResponse) -> Vec<(i8, String)> {
        resp.config_resources
            .iter()
            .map(|r| (r.resource_type, r.resource_name.to_string()))
            .collect()
    }

    #[test]
    fn v1_lists_in_kafkas_order_whatever_the_order_asked() {
        let image = image();
        let resp = list(
            &image,
            1,
            &[RESOURCE_TOPIC, RESOURCE_BROKER, RESOURCE_BROKER],
        );
        assert_eq!(resp.error_code, 0);
        assert_eq!(
            rows(&resp),
            vec![
                (RESOURCE_BROKER, "1".into()),
                (RESOURCE_BROKER, "2".into()),
                (RESOURCE_TOPIC, "t".into())
            ]
        );
        assert_eq!(rows(&list(&image, 1, &[])), rows(&resp));
    }

    #[test]
    fn v0_lists_client_metrics_only() {
        let resp = list(&image(), 0, &[]);
        assert_eq!(resp.error_code, 0);
        assert!(resp.config_resources.is_empty());
    }

    #[test]
    fn an_unknown_type_fails_the_whole_request() {
        let resp = list(&image(), 1, &[RESOURCE_TOPIC, 64]);
        assert_eq!(resp.error_code, ResponseError::UnsupportedVersion.code());
        assert!(resp.config_resources.is_empty());
    }
}
