//! Topic configs: the 33 Kafka 4.1 lists in DescribeConfigs for a topic, each linked
//! to the broker config that supplies its default (Kafka's `TOPIC_CONFIG_SYNONYMS`).

use std::collections::BTreeMap;

use super::{
    int, ConfigDef, ConfigError, ConfigType, Described, Layers, Source, StaticRule, Synonym, Valid,
};

/// A topic config and its broker-level synonym.
#[derive(Clone, Copy, Debug)]
pub struct TopicConfigDef {
    pub def: ConfigDef,
    /// The broker config that sets this topic config's default, if any.
    pub broker: Option<BrokerSynonym>,
}

/// The broker name of a topic config.
#[derive(Clone, Copy, Debug)]
pub struct BrokerSynonym {
    pub name: &'static str,
    /// Kafka's default of the broker config (None: null, e.g. `log.retention.ms`,
    /// whose default comes from `log.retention.hours`).
    pub default: Option<&'static str>,
    /// Coarser broker configs Kafka falls back to when this one is unset, in order
    /// (`log.retention.ms`, then `.minutes`, then `.hours`).
    pub fallback: &'static [Fallback],
    /// Settable as a dynamic broker config (cluster default or per broker).
    pub dynamic: bool,
    /// For the keys `config.rs` reads into `Config` itself: the rule it checks them by
    /// at start-up. None: the topic config's rule checks the static value too.
    pub startup: Option<StaticRule>,
}

/// A coarser broker config a broker synonym falls back to.
#[derive(Clone, Copy, Debug)]
pub struct Fallback {
    pub name: &'static str,
    /// Kafka's default (None: null).
    pub default: Option<&'static str>,
    /// Milliseconds per unit of this config.
    pub unit_ms: i64,
}

const MINUTES: Fallback = Fallback {
    name: "log.retention.minutes",
    default: None,
    unit_ms: 60_000,
};
const fn hours(name: &'static str, default: &'static str) -> Fallback {
    Fallback {
        name,
        default: Some(default),
        unit_ms: 3_600_000,
    }
}

impl BrokerSynonym {
    /// This config's broker name, then the names it falls back to.
    pub fn chain(&self) -> Vec<&'static str> {
        std::iter::once(self.name)
            .chain(self.fallback.iter().map(|f| f.name))
            .collect()
    }

    /// Kafka's default of `name`, one of [`BrokerSynonym::chain`].
    pub fn default_of(&self, name: &str) -> Option<&'static str> {
        if name == self.name {
            return self.default;
        }
        self.fallback
            .iter()
            .find(|f| f.name == name)
            .and_then(|f| f.default)
    }

    /// The broker-level value in this config's unit (a fallback's value converted to
    /// milliseconds): the first name of [`BrokerSynonym::chain`] set in any layer, else
    /// the first with a default. None when no name has either.
    pub fn resolve(&self, layers: &Layers<'_>) -> Option<String> {
        let maps = [
            layers.dynamic_broker,
            layers.dynamic_default,
            Some(layers.static_props),
        ];
        let set = self.chain().into_iter().find_map(|n| {
            maps.iter()
                .find_map(|m| m.and_then(|m| m.get(n)))
                .map(|v| (n, v.clone()))
        });
        let (name, v) = set.or_else(|| {
            self.chain()
                .into_iter()
                .find_map(|n| self.default_of(n).map(|d| (n, d.to_string())))
        })?;
        match self.fallback.iter().find(|f| f.name == name) {
            Some(f) => Some(
                v.trim()
                    .parse::<i64>()
                    .ok()?
                    .saturating_mul(f.unit_ms)
                    .to_string(),
            ),
            None => Some(v),
        }
    }
}

const LONG_MAX: &str = "9223372036854775807";
const INT: (i64, i64) = (i32::MIN as i64, i32::MAX as i64);

const fn at_least(min: i64) -> Valid {
    Valid::Range { min, max: i64::MAX }
}

const fn int_at_least(min: i64) -> Valid {
    Valid::Range { min, max: INT.1 }
}

#[allow(clippy::too_many_arguments)]
const fn t(
    name: &'static str,
    ty: ConfigType,
    default: &'static str,
    valid: Valid,
    fjord_acts: bool,
    broker: Option<BrokerSynonym>,
    doc: &'static str,
) -> TopicConfigDef {
    TopicConfigDef {
        def: ConfigDef {
            name,
            ty,
            default: Some(default),
            valid,
            fjord_acts,
            doc,
        },
        broker,
    }
}

const fn b(name: &'static str, default: &'static str) -> Option<BrokerSynonym> {
    Some(BrokerSynonym {
        name,
        default: Some(default),
        fallback: &[],
        dynamic: true,
        startup: None,
    })
}

const fn b_null(
    name: &'static str,
    fallback: &'static [Fallback],
    dynamic: bool,
) -> Option<BrokerSynonym> {
    Some(BrokerSynonym {
        name,
        default: None,
        fallback,
        dynamic,
        startup: None,
    })
}

const fn b_static(name: &'static str, default: &'static str) -> Option<BrokerSynonym> {
    Some(BrokerSynonym {
        name,
        default: Some(default),
        fallback: &[],
        dynamic: false,
        startup: None,
    })
}

/// `synonym`, read by `config.rs` at start-up and checked there by `rule`; its
/// start-up default is its own default, else the topic config's.
const fn read_at_start(synonym: Option<BrokerSynonym>, rule: StaticRule) -> Option<BrokerSynonym> {
    match synonym {
        Some(b) => Some(BrokerSynonym {
            startup: Some(rule),
            ..b
        }),
        None => None,
    }
}

const I32_MAX: i64 = i32::MAX as i64;

use ConfigType::{Boolean, Double, Int, List, Long, String as Str};

const CODECS: &[&str] = &["uncompressed", "zstd", "lz4", "snappy", "gzip", "producer"];
const POLICIES: &[&str] = &["compact", "delete"];
const TIMESTAMP_TYPES: &[&str] = &["CreateTime", "LogAppendTime"];

/// Every topic config, in Kafka's definition order.
pub const TOPIC_CONFIGS: &[TopicConfigDef] = &[
    t(
        "segment.bytes",
        Int,
        "1073741824",
        int_at_least(1024 * 1024),
        true,
        read_at_start(
            b("log.segment.bytes", "1073741824"),
            int(1024 * 1024, I32_MAX),
        ),
        "The largest size of one segment file; the active segment rolls before an append \
       would exceed it. Retention deletes whole segments.",
    ),
    t(
        "segment.ms",
        Long,
        "604800000",
        at_least(1),
        true,
        read_at_start(
            b_null("log.roll.ms", &[hours("log.roll.hours", "168")], true),
            int(1, i64::MAX),
        ),
        "The active segment rolls once its records span this long, even if not full, so \
       that retention can delete old data.",
    ),
    t(
        "segment.jitter.ms",
        Long,
        "0",
        at_least(0),
        false,
        b_null(
            "log.roll.jitter.ms",
            &[hours("log.roll.jitter.hours", "0")],
            false,
        ),
        "A random jitter subtracted from the time-based roll. Fjord does not apply jitter; \
       only 0 may be set.",
    ),
    t(
        "segment.index.bytes",
        Int,
        "10485760",
        int_at_least(4),
        true,
        read_at_start(b("log.index.size.max.bytes", "10485760"), int(4, I32_MAX)),
        "The largest size of a segment's offset and time indexes; the segment rolls when \
       one is full.",
    ),
    t(
        "flush.messages",
        Long,
        LONG_MAX,
        at_least(1),
        true,
        read_at_start(b("log.flush.interval.messages", LONG_MAX), int(1, i64::MAX)),
        "Fsync after this many messages. Fjord fsyncs every append when this is 1; \
       otherwise appends are made durable by acks=all (group commit) and at roll.",
    ),
    t(
        "flush.ms",
        Long,
        LONG_MAX,
        at_least(0),
        false,
        b_null(
            "log.flush.interval.ms",
            &[Fallback {
                name: "log.flush.scheduler.interval.ms",
                default: Some(LONG_MAX),
                unit_ms: 1,
            }],
            false,
        ),
        "Fsync at this interval. Fjord has no time-based flusher; only the default may \
       be set.",
    ),
    t(
        "retention.bytes",
        Long,
        "-1",
        Valid::Any,
        true,
        read_at_start(b("log.retention.bytes", "-1"), int(-1, i64::MAX)),
        "The largest size a partition may grow to before its oldest segments are deleted \
       (cleanup.policy=delete). -1: no size limit. Checked every \
       log.retention.check.interval.ms and whenever the topic's retention changes.",
    ),
    t(
        "retention.ms",
        Long,
        "604800000",
        at_least(-1),
        true,
        read_at_start(
            b_null(
                "log.retention.ms",
                &[MINUTES, hours("log.retention.hours", "168")],
                true,
            ),
            int(-1, i64::MAX),
        ),
        "How long a segment is kept after its newest record before it is deleted \
       (cleanup.policy=delete). -1: no time limit. Checked every \
       log.retention.check.interval.ms and whenever the topic's retention changes.",
    ),
    t(
        "max.message.bytes",
        Int,
        "1048588",
        int_at_least(0),
        true,
        read_at_start(b("message.max.bytes", "1048588"), int(0, I32_MAX)),
        "The largest record batch the broker accepts (after compression); larger batches \
       get MESSAGE_TOO_LARGE.",
    ),
    t(
        "index.interval.bytes",
        Int,
        "4096",
        int_at_least(0),
        true,
        read_at_start(b("log.index.interval.bytes", "4096"), int(0, I32_MAX)),
        "Bytes of log between entries of the sparse offset and time indexes.",
    ),
    t(
        "delete.retention.ms",
        Long,
        "86400000",
        at_least(0),
        true,
        b("log.cleaner.delete.retention.ms", "86400000"),
        "How long tombstones are kept on compacted topics.",
    ),
    t(
        "min.compaction.lag.ms",
        Long,
        "0",
        at_least(0),
        true,
        b("log.cleaner.min.compaction.lag.ms", "0"),
        "The minimum time a record stays uncompacted.",
    ),
    t(
        "max.compaction.lag.ms",
        Long,
        LONG_MAX,
        at_least(1),
        true,
        b("log.cleaner.max.compaction.lag.ms", LONG_MAX),
        "The maximum time a record stays ineligible for compaction.",
    ),
    t(
        "file.delete.delay.ms",
        Long,
        "60000",
        at_least(0),
        true,
        read_at_start(b("log.segment.delete.delay.ms", "60000"), int(0, i64::MAX)),
        "The delay before a deleted segment's files are removed. Fjord removes them at \
       once: reads run on the partition's own thread and never hold a deleted segment.",
    ),
    t(
        "min.cleanable.dirty.ratio",
        Double,
        "0.5",
        Valid::DoubleRange { min: 0.0, max: 1.0 },
        true,
        b("log.cleaner.min.cleanable.ratio", "0.5"),
        "The share of a compacted log that must be uncleaned before the cleaner runs.",
    ),
    t(
        "cleanup.policy",
        List,
        "delete",
        Valid::ListOf(POLICIES),
        true,
        b("log.cleanup.policy", "delete"),
        "delete: old segments go by retention.ms / retention.bytes. compact: each shard's \
       cleaner keeps the latest record per key and time and size retention do not apply. \
       compact,delete: both.",
    ),
    t(
        "unclean.leader.election.enable",
        Boolean,
        "false",
        Valid::Any,
        true,
        b("unclean.leader.election.enable", "false"),
        "Whether the controller may elect a replica that is neither in sync nor an \
       eligible leader replica when a partition has no other leader to take, losing the \
       records only the lost replicas had (read by the controller from the topic's value, \
       else the cluster-wide default).",
    ),
    t(
        "min.insync.replicas",
        Int,
        "1",
        int_at_least(1),
        true,
        b("min.insync.replicas", "1"),
        "With acks=all, a produce fails with NOT_ENOUGH_REPLICAS when fewer replicas than \
       this are in sync.",
    ),
    t(
        "compression.type",
        Str,
        "producer",
        Valid::OneOf(CODECS),
        true,
        b("compression.type", "producer"),
        "The codec stored batches should use; producer keeps the producer's codec. Fjord \
       stores batches as produced and does not recompress yet: other values are stored \
       and reported only.",
    ),
    t(
        "compression.gzip.level",
        Int,
        "-1",
        Valid::LevelOrDefault { min: 1, max: 9 },
        false,
        b("compression.gzip.level", "-1"),
        "The gzip level when recompressing. Fjord does not recompress; only the default \
       may be set.",
    ),
    t(
        "compression.lz4.level",
        Int,
        "9",
        Valid::Range { min: 1, max: 17 },
        false,
        b("compression.lz4.level", "9"),
        "The lz4 level when recompressing. Fjord does not recompress; only the default may \
       be set.",
    ),
    t(
        "compression.zstd.level",
        Int,
        "3",
        Valid::Range {
            min: -131072,
            max: 22,
        },
        false,
        b("compression.zstd.level", "3"),
        "The zstd level when recompressing. Fjord does not recompress; only the default \
       may be set.",
    ),
    t(
        "preallocate",
        Boolean,
        "false",
        Valid::Any,
        false,
        b("log.preallocate", "false"),
        "Whether segment files are preallocated. Fjord does not preallocate; only false \
       may be set.",
    ),
    t(
        "message.timestamp.type",
        Str,
        "CreateTime",
        Valid::OneOf(TIMESTAMP_TYPES),
        true,
        read_at_start(
            b("log.message.timestamp.type", "CreateTime"),
            StaticRule::TimestampType,
        ),
        "CreateTime keeps the producer's timestamps; LogAppendTime stamps batches with the \
       broker's clock on append.",
    ),
    t(
        "message.timestamp.before.max.ms",
        Long,
        LONG_MAX,
        at_least(0),
        true,
        b("log.message.timestamp.before.max.ms", LONG_MAX),
        "With CreateTime, a batch whose timestamps are more than this far behind the \
       broker's clock gets INVALID_TIMESTAMP. Fjord checks the batch's first and max \
       timestamps, not every record's.",
    ),
    t(
        "message.timestamp.after.max.ms",
        Long,
        "3600000",
        at_least(0),
        true,
        b("log.message.timestamp.after.max.ms", "3600000"),
        "With CreateTime, a batch whose timestamps are more than this far ahead of the \
       broker's clock gets INVALID_TIMESTAMP. Fjord checks the batch's first and max \
       timestamps, not every record's.",
    ),
    t(
        "leader.replication.throttled.replicas",
        List,
        "",
        Valid::ThrottledReplicas,
        true,
        None,
        "Replicas whose replication the leader throttles ([partition]:[broker],... or *): \
       the leader sends them at most leader.replication.throttled.rate bytes per second.",
    ),
    t(
        "follower.replication.throttled.replicas",
        List,
        "",
        Valid::ThrottledReplicas,
        true,
        None,
        "Replicas whose replication the follower throttles ([partition]:[broker],... or *): \
       the follower fetches them at most follower.replication.throttled.rate bytes per second.",
    ),
    t(
        "remote.storage.enable",
        Boolean,
        "false",
        Valid::Any,
        false,
        None,
        "Tiered storage. Fjord has none; only false may be set.",
    ),
    t(
        "local.retention.ms",
        Long,
        "-2",
        at_least(-2),
        false,
        b_static("log.local.retention.ms", "-2"),
        "Local retention under tiered storage. Fjord has none; only -2 may be set.",
    ),
    t(
        "local.retention.bytes",
        Long,
        "-2",
        at_least(-2),
        false,
        b_static("log.local.retention.bytes", "-2"),
        "Local retention under tiered storage. Fjord has none; only -2 may be set.",
    ),
    t(
        "remote.log.copy.disable",
        Boolean,
        "false",
        Valid::Any,
        false,
        None,
        "Tiered storage. Fjord has none; only false may be set.",
    ),
    t(
        "remote.log.delete.on.disable",
        Boolean,
        "false",
        Valid::Any,
        false,
        None,
        "Tiered storage. Fjord has none; only false may be set.",
    ),
];

/// The topic config named `name`.
pub fn find(name: &str) -> Option<&'static TopicConfigDef> {
    TOPIC_CONFIGS.iter().find(|c| c.def.name == name)
}

/// Validates a whole set of topic overrides: known names, good values, and Kafka's
/// cross-field rule (`min.compaction.lag.ms` <= `max.compaction.lag.ms`).
pub fn validate_overrides(configs: &BTreeMap<String, String>) -> Result<(), ConfigError> {
    for (k, v) in configs {
        let def = find(k).ok_or_else(|| ConfigError(format!("Unknown topic config name: {k}")))?;
        def.def.validate_settable(v)?;
    }
    let lag = |k: &str, d: i64| {
        configs
            .get(k)
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or(d)
    };
    let (min, max) = (
        lag("min.compaction.lag.ms", 0),
        lag("max.compaction.lag.ms", i64::MAX),
    );
    if min > max {
        return Err(ConfigError(format!(
            "conflict topic config setting min.compaction.lag.ms ({min}) > \
             max.compaction.lag.ms ({max})"
        )));
    }
    Ok(())
}

impl TopicConfigDef {
    /// The config as DescribeConfigs reports it for a topic with `overrides`.
    pub fn describe(&self, overrides: &BTreeMap<String, String>, layers: &Layers<'_>) -> Described {
        let mut synonyms = Vec::new();
        if let Some(v) = overrides.get(self.def.name) {
            synonyms.push(Synonym {
                name: self.def.name.to_string(),
                value: Some(v.clone()),
                source: Source::DynamicTopic,
            });
        }
        if let Some(b) = self.broker {
            synonyms.extend(layers.broker_synonyms(&b.chain(), |n| b.default_of(n)));
        }
        // The value is the effective one, in the topic config's unit, as Kafka reports
        // the log config; the source is the first synonym's.
        let source = synonyms.first().map_or(Source::Default, |s| s.source);
        let value = Some(self.value(overrides, layers));
        Described {
            name: self.def.name.to_string(),
            value,
            source,
            read_only: false,
            sensitive: false,
            ty: self.def.ty,
            doc: self.def.doc,
            synonyms,
        }
    }

    /// The effective value for a topic with `overrides`, in the topic config's unit.
    /// As Kafka's merged broker config: the first name of the synonym chain set in any
    /// layer wins (a static `log.retention.ms` beats a dynamic `log.retention.hours`).
    pub fn value(&self, overrides: &BTreeMap<String, String>, layers: &Layers<'_>) -> String {
        if let Some(v) = overrides.get(self.def.name) {
            return v.clone();
        }
        if let Some(b) = self.broker {
            if let Some(v) = b.resolve(layers) {
                return v;
            }
        }
        self.def.default.unwrap_or("").to_string()
    }
}
