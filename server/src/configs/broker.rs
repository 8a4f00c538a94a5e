//! Broker configs: the keys `config.rs` reads at start-up plus the broker synonyms of
//! every topic config. The synonyms of configs Fjord acts on are dynamic (settable
//! through AlterConfigs for the cluster default, resource name "", or one broker);
//! everything else is read-only and comes from `server.properties`.

use super::topic::{TopicConfigDef, TOPIC_CONFIGS};
use super::{ConfigDef, ConfigError, ConfigType, Described, Layers, Source, Valid};

use ConfigType::{Boolean, Int, Long, String as Str};

const fn s(name: &'static str, ty: ConfigType, doc: &'static str) -> ConfigDef {
    ConfigDef {
        name,
        ty,
        default: None,
        valid: Valid::Any,
        fjord_acts: true,
        doc,
    }
}

/// Static broker configs that are not the synonym of a topic config. Their defaults
/// and validation live in `config.rs`.
pub const STATIC_CONFIGS: &[ConfigDef] = &[
    s("node.id", Int, "The id of this node."),
    s(
        "listeners",
        Str,
        "The listeners clients connect to, NAME://host:port. Read-only in Fjord.",
    ),
    s(
        "advertised.listeners",
        Str,
        "The addresses given to clients in Metadata; defaults to listeners.",
    ),
    s(
        "log.dirs",
        Str,
        "The directory holding partition data and the metadata log.",
    ),
    s(
        "num.partitions",
        Int,
        "The default number of partitions of a new topic.",
    ),
    s(
        "default.replication.factor",
        Int,
        "The default replication factor of a new topic.",
    ),
    s(
        "auto.create.topics.enable",
        Boolean,
        "Whether Metadata requests create missing topics.",
    ),
    s(
        "log.retention.check.interval.ms",
        Long,
        "How often retention is checked.",
    ),
    s(
        "socket.request.max.bytes",
        Int,
        "The largest request frame; larger ones close the connection.",
    ),
    s(
        "fetch.max.bytes",
        Int,
        "The most bytes one Fetch response returns.",
    ),
    s(
        "max.connections",
        Int,
        "The most client connections the broker accepts.",
    ),
    s(
        "group.initial.rebalance.delay.ms",
        Int,
        "How long a new group waits for more members before its first rebalance.",
    ),
    s(
        "offsets.topic.num.partitions",
        Int,
        "The number of partitions of __consumer_offsets.",
    ),
    s(
        "offsets.retention.minutes",
        Int,
        "Committed offsets of a group expire this long after the group became empty.",
    ),
    s(
        "offsets.retention.check.interval.ms",
        Long,
        "How often expired committed offsets are looked for.",
    ),
    s(
        "fjord.cores",
        Int,
        "Fjord: the number of shards (one per core); 0 means all cores.",
    ),
    s(
        "fjord.max.inflight.requests.per.connection",
        Int,
        "Fjord: requests of one connection processed at once.",
    ),
    s(
        "fjord.max.partitions.per.request",
        Int,
        "Fjord: the most partitions one request may name.",
    ),
    s(
        "fjord.tail.cache.bytes",
        Int,
        "Fjord: recent appends kept in memory per partition for tailing reads.",
    ),
    s(
        "fjord.io.uring.entries",
        Int,
        "Fjord: the io_uring submission queue size per shard.",
    ),
    s(
        "fjord.metrics.listener",
        Str,
        "Fjord: host:port of the Prometheus endpoint; empty is off.",
    ),
    s(
        "fjord.cluster.id",
        Str,
        "Fjord: the cluster id reported to clients.",
    ),
];

/// The topic config whose broker synonym is `name`.
pub fn topic_of(name: &str) -> Option<&'static TopicConfigDef> {
    TOPIC_CONFIGS
        .iter()
        .find(|t| t.broker.is_some_and(|b| b.name == name))
}

/// Validates a dynamic broker config (`AlterConfigs` on a BROKER resource).
pub fn validate_dynamic(name: &str, value: &str) -> Result<String, ConfigError> {
    match topic_of(name) {
        Some(t) if t.broker.is_some_and(|b| b.dynamic) => {
            let def = ConfigDef {
                name: t.broker.map_or(t.def.name, |b| b.name),
                ..t.def
            };
            def.validate_settable(value)
        }
        Some(_) => Err(ConfigError(format!(
            "Cannot update these configs dynamically: [{name}]"
        ))),
        None if STATIC_CONFIGS.iter().any(|c| c.name == name) => Err(ConfigError(format!(
            "Cannot update these configs dynamically: [{name}]"
        ))),
        None => Err(ConfigError(format!("Unknown broker config name: {name}"))),
    }
}

/// Validates a static key `config.rs` does not know itself: a topic config's broker
/// synonym, checked by the topic config's rule.
pub fn validate_static(name: &str, value: &str) -> Result<(), ConfigError> {
    let t =
        topic_of(name).ok_or_else(|| ConfigError(format!("{name}: unknown configuration key")))?;
    let def = ConfigDef {
        name: t.broker.map_or(t.def.name, |b| b.name),
        ..t.def
    };
    def.validate_settable(value).map(|_| ())
}

/// Every config of this broker (resource name = its node id), as Kafka's
/// `createBrokerConfigEntry` reports them. `fjord_default` gives `config.rs`'s
/// default of a static key.
pub fn describe_broker(
    layers: &Layers<'_>,
    fjord_default: impl Fn(&str) -> Option<&'static str>,
) -> Vec<Described> {
    let mut out = Vec::new();
    for def in STATIC_CONFIGS {
        let synonyms = layers.broker_synonyms(&[def.name], |n| fjord_default(n));
        out.push(entry(def.name, def.ty, def.doc, true, synonyms));
    }
    for t in TOPIC_CONFIGS {
        let Some(b) = t.broker else { continue };
        let mut chain = vec![b.name];
        chain.extend(b.fallback.map(|f| f.0));
        let synonyms = layers.broker_synonyms(&chain, |n| {
            if n == b.name {
                b.default
            } else {
                b.fallback.map(|f| f.1)
            }
        });
        out.push(entry(b.name, t.def.ty, t.def.doc, !b.dynamic, synonyms));
    }
    out
}

/// The cluster-wide dynamic defaults (resource name ""): only the keys set there.
pub fn describe_cluster_default(layers: &Layers<'_>) -> Vec<Described> {
    let Some(map) = layers.dynamic_default else {
        return Vec::new();
    };
    map.iter()
        .filter_map(|(k, v)| {
            let t = topic_of(k)?;
            let synonyms = vec![super::Synonym {
                name: k.clone(),
                value: Some(v.clone()),
                source: Source::DynamicDefaultBroker,
            }];
            Some(entry(k, t.def.ty, t.def.doc, false, synonyms))
        })
        .collect()
}

fn entry(
    name: &str,
    ty: ConfigType,
    doc: &'static str,
    read_only: bool,
    synonyms: Vec<super::Synonym>,
) -> Described {
    let (value, source) = match synonyms.first() {
        Some(s) => (s.value.clone(), s.source),
        None => (None, Source::Default),
    };
    Described {
        name: name.to_string(),
        value,
        source,
        read_only,
        sensitive: false,
        ty,
        doc,
        synonyms,
    }
}
