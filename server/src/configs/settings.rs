//! The effective, typed settings of one topic: what the data path reads (produce
//! limits, storage's `LogConfig`). Resolved from the layers on each image change or
//! request; values were validated when set, so a value that fails to parse (only
//! possible through a hand-edited metadata log) falls back to Kafka's default.

use std::collections::BTreeMap;

use super::topic::{find, TopicConfigDef, TOPIC_CONFIGS};
use super::{list_items, Layers};

/// The topic configs Fjord acts on, resolved through every layer.
#[derive(Clone, Debug, PartialEq)]
pub struct TopicSettings {
    pub segment_bytes: i64,
    pub segment_ms: i64,
    pub segment_index_bytes: i64,
    pub retention_ms: i64,
    pub retention_bytes: i64,
    pub index_interval_bytes: i64,
    pub file_delete_delay_ms: i64,
    pub max_message_bytes: i64,
    pub flush_messages: i64,
    pub min_insync_replicas: i64,
    pub log_append_time: bool,
    pub timestamp_before_max_ms: i64,
    pub timestamp_after_max_ms: i64,
    /// `cleanup.policy` contains `delete`: time and size retention apply.
    pub cleanup_delete: bool,
    pub cleanup_compact: bool,
    pub compression_type: String,
    pub delete_retention_ms: i64,
    pub min_compaction_lag_ms: i64,
    pub max_compaction_lag_ms: i64,
    pub min_cleanable_dirty_ratio: f64,
    pub leader_throttled: ThrottledReplicas,
    pub follower_throttled: ThrottledReplicas,
}

/// A `*.replication.throttled.replicas` list: which (partition, broker) replicas the
/// replication throttle applies to.
#[derive(Clone, Debug, Default, PartialEq)]
pub enum ThrottledReplicas {
    #[default]
    None,
    /// `*`: every replica.
    All,
    Listed(Vec<(i32, i32)>),
}

impl ThrottledReplicas {
    /// Parses a validated list value; items that do not parse are ignored.
    pub fn parse(v: &str) -> ThrottledReplicas {
        let items = list_items(v);
        if items == ["*"] {
            return ThrottledReplicas::All;
        }
        let listed: Vec<(i32, i32)> = items
            .iter()
            .filter_map(|i| {
                let (p, b) = i.split_once(':')?;
                Some((p.trim().parse().ok()?, b.trim().parse().ok()?))
            })
            .collect();
        if listed.is_empty() {
            ThrottledReplicas::None
        } else {
            ThrottledReplicas::Listed(listed)
        }
    }

    /// Whether the replica of `partition` on `broker` is throttled.
    pub fn covers(&self, partition: i32, broker: i32) -> bool {
        match self {
            ThrottledReplicas::None => false,
            ThrottledReplicas::All => true,
            ThrottledReplicas::Listed(l) => l.contains(&(partition, broker)),
        }
    }
}

fn def(name: &str) -> &'static TopicConfigDef {
    // Invariant (unit-tested): every name used below is in TOPIC_CONFIGS.
    find(name).unwrap_or(&TOPIC_CONFIGS[0])
}

impl TopicSettings {
    pub fn resolve(overrides: &BTreeMap<String, String>, layers: &Layers<'_>) -> TopicSettings {
        let text = |name: &str| def(name).value(overrides, layers);
        let long = |name: &str| {
            let d = def(name);
            d.value(overrides, layers)
                .trim()
                .parse::<i64>()
                .or_else(|_| d.def.default.unwrap_or("0").parse())
                .unwrap_or(0)
        };
        let policy = text("cleanup.policy");
        let policies = list_items(&policy);
        TopicSettings {
            segment_bytes: long("segment.bytes"),
            segment_ms: long("segment.ms"),
            segment_index_bytes: long("segment.index.bytes"),
            retention_ms: long("retention.ms"),
            retention_bytes: long("retention.bytes"),
            index_interval_bytes: long("index.interval.bytes"),
            file_delete_delay_ms: long("file.delete.delay.ms"),
            max_message_bytes: long("max.message.bytes"),
            flush_messages: long("flush.messages"),
            min_insync_replicas: long("min.insync.replicas"),
            log_append_time: text("message.timestamp.type").trim() == "LogAppendTime",
            timestamp_before_max_ms: long("message.timestamp.before.max.ms"),
            timestamp_after_max_ms: long("message.timestamp.after.max.ms"),
            cleanup_delete: policies.iter().any(|p| p.eq_ignore_ascii_case("delete")),
            cleanup_compact: policies.iter().any(|p| p.eq_ignore_ascii_case("compact")),
            compression_type: text("compression.type").trim().to_string(),
            delete_retention_ms: long("delete.retention.ms"),
            min_compaction_lag_ms: long("min.compaction.lag.ms"),
            max_compaction_lag_ms: long("max.compaction.lag.ms"),
            min_cleanable_dirty_ratio: text("min.cleanable.dirty.ratio")
                .trim()
                .parse()
                .unwrap_or(0.5),
            leader_throttled: ThrottledReplicas::parse(&text(
                "leader.replication.throttled.replicas",
            )),
            follower_throttled: ThrottledReplicas::parse(&text(
                "follower.replication.throttled.replicas",
            )),
        }
    }

    /// The timestamps a CreateTime record may carry at `now_ms`: `[now - before.max,
    /// now + after.max]`.
    pub fn timestamp_window(&self, now_ms: i64) -> (i64, i64) {
        (
            now_ms.saturating_sub(self.timestamp_before_max_ms),
            now_ms.saturating_add(self.timestamp_after_max_ms),
        )
    }

    /// Kafka's timestamp check for CreateTime topics: `Err` names the bound crossed.
    /// `first` and `max` are the batch's first and max timestamps.
    pub fn check_timestamps(&self, first: i64, max: i64, now_ms: i64) -> Result<(), String> {
        if self.log_append_time {
            return Ok(());
        }
        for ts in [first, max] {
            if ts < 0 {
                continue;
            }
            if now_ms.saturating_sub(ts) > self.timestamp_before_max_ms
                || ts.saturating_sub(now_ms) > self.timestamp_after_max_ms
            {
                let (lo, hi) = self.timestamp_window(now_ms);
                return Err(format!(
                    "Timestamp {ts} of message is out of range. The timestamp should be \
                     within [{lo}, {hi}]"
                ));
            }
        }
        Ok(())
    }
}
