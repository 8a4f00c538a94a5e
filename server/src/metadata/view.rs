//! `ClusterView`: one shard's view of the cluster — the latest `ClusterImage` it has
//! seen, and each topic's effective settings under that image.
//!
//! Exists once per shard and lives on that shard's thread only (`!Send`); every
//! service of the shard shares it through an `Rc`.
//!
//! Invariants:
//! - the image only moves forward (`applied_index` never decreases);
//! - a topic's cached settings belong to the image whose `applied_index` the cache
//!   is keyed by (an image's index names its content), so a config change is seen by
//!   the first lookup under the image that carries it.

use std::cell::RefCell;
use std::collections::HashMap;
use std::rc::Rc;
use std::sync::Arc;

use uuid::Uuid;

use super::{ClusterImage, MetadataHandle, TopicImage};
use crate::config::Config;
use crate::configs::{Layers, TopicSettings};

pub struct ClusterView {
    config: Arc<Config>,
    metadata: MetadataHandle,
    image: RefCell<Arc<ClusterImage>>,
    /// Resolved topic settings by topic id, valid for the image whose
    /// `applied_index` is the first field.
    settings: RefCell<(u64, HashMap<Uuid, Rc<TopicSettings>>)>,
}

impl ClusterView {
    pub fn new(config: Arc<Config>, metadata: MetadataHandle) -> Rc<ClusterView> {
        let image = metadata.current();
        Rc::new(ClusterView {
            config,
            metadata,
            image: RefCell::new(image),
            settings: RefCell::new((u64::MAX, HashMap::new())),
        })
    }

    /// The handle to the control plane (proposals, the image channel).
    pub fn metadata(&self) -> &MetadataHandle {
        &self.metadata
    }

    /// The current cluster image.
    pub fn image(&self) -> Arc<ClusterImage> {
        self.image.borrow().clone()
    }

    /// Installs a newer image (from the control plane or a proposal's reply); an
    /// older one is ignored.
    pub fn update_image(&self, image: Arc<ClusterImage>) {
        let mut cur = self.image.borrow_mut();
        if image.applied_index > cur.applied_index {
            *cur = image;
        }
    }

    /// Catches up with the latest image the control plane published (a request may
    /// have been routed here with a newer image than this shard's).
    pub fn refresh(&self) {
        self.update_image(self.metadata.current());
    }

    /// Whether this node leads partition `index` of `topic` (and so serves it).
    pub fn leads(&self, topic: &TopicImage, index: i32) -> bool {
        usize::try_from(index)
            .ok()
            .and_then(|i| topic.partitions.get(i))
            .is_some_and(|p| p.leader == self.config.node_id)
    }

    /// Whether this node is one of the replicas of partition `index` of `topic` (and
    /// so keeps its log).
    pub fn is_replica(&self, topic: &TopicImage, index: i32) -> bool {
        usize::try_from(index)
            .ok()
            .and_then(|i| topic.partitions.get(i))
            .is_some_and(|p| p.replicas.contains(&self.config.node_id))
    }

    /// The effective settings of a topic in `image`: topic overrides, then dynamic
    /// broker configs, then static ones, then Kafka's defaults (see `configs`).
    /// Resolved once per topic and image (Produce asks for every partition).
    pub fn topic_settings(&self, image: &ClusterImage, topic: &TopicImage) -> Rc<TopicSettings> {
        let mut cache = self.settings.borrow_mut();
        if cache.0 != image.applied_index {
            *cache = (image.applied_index, HashMap::new());
        }
        cache
            .1
            .entry(topic.id)
            .or_insert_with(|| {
                Rc::new(TopicSettings::resolve(
                    &topic.configs,
                    &self.config_layers(image),
                ))
            })
            .clone()
    }

    /// A LONG broker config of this node as the current image has it: its dynamic
    /// per-broker value, then the cluster default, then `server.properties`, then
    /// `default`.
    pub fn broker_long(&self, name: &str, default: i64) -> i64 {
        let image = self.image();
        let layers = self.config_layers(&image);
        let value = [
            layers.dynamic_broker,
            layers.dynamic_default,
            Some(layers.static_props),
        ]
        .into_iter()
        .flatten()
        .find_map(|m| m.get(name))
        .and_then(|v| v.trim().parse().ok());
        value.unwrap_or(default)
    }

    /// The broker-level config layers of `image` as seen by this node.
    pub fn config_layers<'a>(&'a self, image: &'a ClusterImage) -> Layers<'a> {
        Layers {
            dynamic_broker: image.broker_configs.get(&self.config.node_id.to_string()),
            dynamic_default: image.broker_configs.get(""),
            static_props: &self.config.properties,
        }
    }
}
