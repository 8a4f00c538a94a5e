//! Broker configs: the catalogue of every broker key, read by `config.rs` at start-up
//! and by the admin APIs. [`BROKER_KEYS`] holds the broker's own keys; the broker
//! synonyms of topic configs live with their topic config in [`TOPIC_CONFIGS`]. The
//! synonyms of configs Fjord acts on are dynamic (settable through AlterConfigs for
//! the cluster default, resource name "", or one broker); everything else is
//! read-only and comes from `server.properties`.
//!
//! Invariant: a broker key is named once, here or in [`TOPIC_CONFIGS`].

use super::kafka_keys::{KafkaKey, KAFKA_KEYS};
use super::topic::{BrokerSynonym, TopicConfigDef, TOPIC_CONFIGS};
use super::{int, ConfigDef, ConfigError, ConfigType, Described, Layers, Source, StaticRule};

use ConfigType::{Boolean, Int, List, Long, Short, String as Str};
use StaticRule::{Bool, HostPorts, Listeners, ProcessRoles, ProtocolMap, Voters};

const I32_MAX: i64 = i32::MAX as i64;

/// One of the broker's own keys (not the synonym of a topic config).
#[derive(Clone, Copy, Debug)]
pub struct BrokerKey {
    pub name: &'static str,
    /// The type DescribeConfigs reports.
    pub ty: ConfigType,
    /// What `config.rs` accepts at start-up.
    pub rule: StaticRule,
    /// The value when unset: Kafka's default, or Fjord's for Fjord's own keys.
    pub default: &'static str,
    pub doc: &'static str,
    /// Settable through AlterConfigs (per broker, or the cluster default ""), and read
    /// from the image at run time, not only at start-up.
    pub dynamic: bool,
}

const fn key(
    name: &'static str,
    ty: ConfigType,
    rule: StaticRule,
    default: &'static str,
    doc: &'static str,
) -> BrokerKey {
    BrokerKey {
        name,
        ty,
        rule,
        default,
        doc,
        dynamic: false,
    }
}

/// A key that AlterConfigs may set on a broker or the cluster default.
const fn dynamic(key: BrokerKey) -> BrokerKey {
    BrokerKey {
        dynamic: true,
        ..key
    }
}

/// Every broker key that is not the synonym of a topic config, in the order
/// DescribeConfigs reports them.
pub const BROKER_KEYS: &[BrokerKey] = &[
    key("node.id", Int, int(0, I32_MAX), "1", "The id of this node."),
    key(
        "listeners",
        Str,
        Listeners,
        "PLAINTEXT://localhost:9092",
        "The listeners clients connect to, NAME://host:port. Read-only in Fjord.",
    ),
    key(
        "advertised.listeners",
        Str,
        Listeners,
        "",
        "The addresses given to clients in Metadata; defaults to listeners.",
    ),
    key(
        "log.dirs",
        Str,
        StaticRule::Str,
        "./data",
        "The directory holding partition data and the metadata log.",
    ),
    key(
        "num.partitions",
        Int,
        int(1, 1_000_000),
        "1",
        "The default number of partitions of a new topic.",
    ),
    key(
        "default.replication.factor",
        Int,
        int(1, i16::MAX as i64),
        "1",
        "The default replication factor of a new topic.",
    ),
    key(
        "auto.create.topics.enable",
        Boolean,
        Bool,
        "true",
        "Whether Metadata requests create missing topics.",
    ),
    key(
        "log.retention.check.interval.ms",
        Long,
        int(1, i64::MAX),
        "300000",
        "How often retention is checked.",
    ),
    key(
        "replica.high.watermark.checkpoint.interval.ms",
        Long,
        int(1, i64::MAX),
        "5000",
        "How often each shard writes the high watermark of its replicated partitions \
         that moved to their high-watermark-checkpoint (also at clean shutdown).",
    ),
    key(
        "log.cleaner.backoff.ms",
        Long,
        int(1, i64::MAX),
        "15000",
        "How often each shard looks for compacted partitions due for cleaning.",
    ),
    key(
        "socket.request.max.bytes",
        Int,
        int(1, I32_MAX),
        "104857600",
        "The largest request frame; larger ones close the connection.",
    ),
    key(
        "fetch.max.bytes",
        Int,
        int(1024, I32_MAX),
        "57671680",
        "The most bytes one Fetch response returns.",
    ),
    key(
        "quota.window.num",
        Int,
        int(1, I32_MAX),
        "11",
        "The number of samples kept for client quotas.",
    ),
    key(
        "quota.window.size.seconds",
        Int,
        int(1, I32_MAX),
        "1",
        "The time span of each sample for client quotas.",
    ),
    key(
        "max.connections",
        Int,
        int(0, I32_MAX),
        "2147483647",
        "The most client connections the broker accepts.",
    ),
    key(
        "max.connections.per.ip",
        Int,
        int(0, I32_MAX),
        "2147483647",
        "The most client connections the broker accepts from one IP address.",
    ),
    key(
        "max.connections.per.ip.overrides",
        Str,
        StaticRule::Str,
        "",
        "Per-host limits instead of max.connections.per.ip: host or IP:count, comma \
         separated (a host name stands for each address it resolves to at start-up).",
    ),
    key(
        "connections.max.idle.ms",
        Long,
        int(i64::MIN, i64::MAX),
        "600000",
        "A client connection with no request for this long is closed; negative never.",
    ),
    key(
        "group.initial.rebalance.delay.ms",
        Int,
        int(0, I32_MAX),
        "3000",
        "How long a new group waits for more members before its first rebalance.",
    ),
    key(
        "group.consumer.session.timeout.ms",
        Int,
        int(1, I32_MAX),
        "45000",
        "A member of a consumer group (KIP-848) silent this long is removed.",
    ),
    key(
        "group.consumer.heartbeat.interval.ms",
        Int,
        int(1, I32_MAX),
        "5000",
        "The heartbeat interval members of a consumer group (KIP-848) are told to keep.",
    ),
    key(
        "num.recovery.threads.per.data.dir",
        Int,
        int(1, 1024),
        "2",
        "The number of threads per data directory to be used for log recovery at startup \
         and flushing at shutdown: in Fjord, how many partition logs of the node are \
         opened (recovered) at once.",
    ),
    key(
        "offsets.topic.num.partitions",
        Int,
        int(1, 1_000_000),
        "50",
        "The number of partitions of __consumer_offsets.",
    ),
    key(
        "offsets.topic.replication.factor",
        Short,
        int(1, i16::MAX as i64),
        "3",
        "The replication factor of __consumer_offsets. Fjord creates it with as many \
         replicas as there are live brokers, up to this (Kafka refuses to create it \
         until enough brokers are up), so a single node works with the default.",
    ),
    key(
        "offsets.retention.minutes",
        Int,
        int(1, I32_MAX),
        "10080",
        "Committed offsets of a group expire this long after the group became empty.",
    ),
    key(
        "offsets.retention.check.interval.ms",
        Long,
        int(1, i64::MAX),
        "600000",
        "How often expired committed offsets are looked for.",
    ),
    key(
        "controller.quorum.voters",
        List,
        Voters,
        "",
        "The controller voters, id@host:port; empty: this node is a one-voter quorum.",
    ),
    key(
        "controller.listener.names",
        Str,
        StaticRule::Str,
        "CONTROLLER",
        "The listeners that carry controller (Raft) traffic only.",
    ),
    key(
        "process.roles",
        List,
        ProcessRoles,
        "broker,controller",
        "The roles of this node; Fjord runs in combined mode only.",
    ),
    key(
        "listener.security.protocol.map",
        Str,
        ProtocolMap,
        "PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT",
        "The security protocol of each listener; Fjord supports PLAINTEXT only.",
    ),
    key(
        "controller.quorum.bootstrap.servers",
        List,
        HostPorts,
        "",
        "host:port of the controller listeners a node first contacts. With \
         controller.quorum.voters empty, Fjord accepts only this node's own controller \
         listener here: the node forms a one-voter quorum, as after Kafka's \
         `kafka-storage format --standalone`.",
    ),
    key(
        "inter.broker.listener.name",
        Str,
        StaticRule::Str,
        "",
        "The listener brokers use to reach each other. Fjord serves clients and replicas \
         on one listener, so this must name that listener (the first one not in \
         controller.listener.names) when set.",
    ),
    key(
        "broker.id",
        Int,
        int(-1, I32_MAX),
        "-1",
        "The broker id; in KRaft mode it must equal node.id when set.",
    ),
    key(
        "log.dir",
        Str,
        StaticRule::Str,
        "./data",
        "The data directory, used when log.dirs is not set.",
    ),
    key(
        "max.incremental.fetch.session.cache.slots",
        Int,
        int(0, I32_MAX),
        "1000",
        "The most fetch sessions (KIP-227) the node keeps, spread over its shards; a \
         session lives on the shard of the connection that opened it. 0: no sessions, \
         every Fetch is answered in full.",
    ),
    key(
        "socket.send.buffer.bytes",
        Int,
        int(-1, I32_MAX),
        "-1",
        "SO_SNDBUF of client connections; -1 keeps the kernel's default and its \
         autotuning (Fjord's default; Kafka's is 102400).",
    ),
    key(
        "socket.receive.buffer.bytes",
        Int,
        int(-1, I32_MAX),
        "-1",
        "SO_RCVBUF of client connections; -1 keeps the kernel's default and its \
         autotuning (Fjord's default; Kafka's is 102400).",
    ),
    key(
        "broker.session.timeout.ms",
        Int,
        int(1, I32_MAX),
        "9000",
        "A broker that has not heartbeaten to the controller this long is fenced.",
    ),
    key(
        "broker.heartbeat.interval.ms",
        Int,
        int(1, I32_MAX),
        "2000",
        "How often a broker heartbeats to the controller.",
    ),
    key(
        "fjord.cores",
        Int,
        int(0, 1024),
        "0",
        "Fjord: the number of shards (one per core); 0 means all cores.",
    ),
    key(
        "fjord.max.inflight.requests.per.connection",
        Int,
        int(1, 65536),
        "128",
        "Fjord: requests of one connection processed at once.",
    ),
    key(
        "fjord.max.partitions.per.request",
        Int,
        int(1, I32_MAX),
        "100000",
        "Fjord: the most partitions one request may name.",
    ),
    key(
        "fjord.tail.cache.bytes",
        Int,
        int(0, I32_MAX),
        "1048576",
        "Fjord: recent appends kept in memory per partition for tailing reads.",
    ),
    key(
        "auto.leader.rebalance.enable",
        Boolean,
        Bool,
        "true",
        "Whether the controller moves leadership back to each partition's preferred \
         replica (the first one) when it is live and in sync, for brokers whose share of \
         partitions led elsewhere exceeds leader.imbalance.per.broker.percentage.",
    ),
    key(
        "leader.imbalance.check.interval.seconds",
        Long,
        int(1, i64::MAX),
        "300",
        "How often the controller checks for leaders away from their preferred replica.",
    ),
    key(
        "fjord.auto.rebalance.enable",
        Boolean,
        Bool,
        "false",
        "Fjord: whether the controller moves replicas to where the placement ring over \
         the registered brokers puts them, as reassignments (a broker registering for the \
         first time takes about 1/N of the replicas; a fenced broker moves nothing).",
    ),
    key(
        "fjord.auto.rebalance.check.interval.ms",
        Long,
        int(1, i64::MAX),
        "10000",
        "Fjord: how often the controller compares the replicas with the ring's placement.",
    ),
    key(
        "fjord.auto.rebalance.max.partitions",
        Int,
        int(1, I32_MAX),
        "1000",
        "Fjord: the most partitions one ring rebalance round reassigns; the rest follow \
         once those have moved.",
    ),
    key(
        "leader.imbalance.per.broker.percentage",
        Int,
        int(0, 100),
        "10",
        "The share (in percent) of a broker's preferred partitions led elsewhere above \
         which the controller moves them back.",
    ),
    key(
        "replica.lag.time.max.ms",
        Long,
        int(1, i64::MAX),
        "30000",
        "A follower that has not caught up with the leader's log end for this long leaves \
         the ISR.",
    ),
    key(
        "replica.fetch.wait.max.ms",
        Int,
        int(0, I32_MAX),
        "500",
        "The longest a follower's fetch waits at the leader for new records.",
    ),
    key(
        "replica.fetch.max.bytes",
        Int,
        int(0, I32_MAX),
        "1048576",
        "The bytes a follower fetches per partition at most (at least one batch).",
    ),
    key(
        "replica.fetch.response.max.bytes",
        Int,
        int(0, I32_MAX),
        "10485760",
        "The bytes one follower fetch takes from a leader at most, over all its \
         partitions.",
    ),
    key(
        "replica.fetch.backoff.ms",
        Int,
        int(0, I32_MAX),
        "1000",
        "How long a follower waits before fetching again from a leader after an error.",
    ),
    key(
        "fjord.replication.durable.high.watermark",
        Boolean,
        Bool,
        "true",
        "Fjord: a replica counts towards the high watermark only records it has \
         fdatasync'd, so an acknowledged acks=all write survives even every replica's \
         process or machine dying at once. false: written records count (Kafka's rule, \
         page cache only), which is faster and loses acknowledged writes to a \
         simultaneous power loss of the ISR.",
    ),
    key(
        "max.request.partition.size.limit",
        Int,
        int(1, I32_MAX),
        "2000",
        "The most partitions one DescribeTopicPartitions answer lists (clients page \
         through the rest).",
    ),
    dynamic(key(
        "leader.replication.throttled.rate",
        Long,
        int(0, i64::MAX),
        "9223372036854775807",
        "The bytes per second a leader sends followers of the replicas listed in a \
         topic's leader.replication.throttled.replicas, over all of them (each of the \
         broker's shards takes an equal share). A throttled partition gets no records in \
         a follower fetch while the rate is exceeded.",
    )),
    dynamic(key(
        "follower.replication.throttled.rate",
        Long,
        int(0, i64::MAX),
        "9223372036854775807",
        "The bytes per second a follower fetches for the replicas listed in a topic's \
         follower.replication.throttled.replicas, over all of them (each of the broker's \
         shards takes an equal share). A throttled partition is left out of follower \
         fetches while the rate is exceeded.",
    )),
    dynamic(key(
        "replica.alter.log.dirs.io.max.bytes.per.second",
        Long,
        int(0, i64::MAX),
        "9223372036854775807",
        "Kafka's limit on moving replicas between a broker's log directories. Fjord never \
         moves replicas between directories, so there is nothing to throttle: the value \
         is stored and reported only.",
    )),
    key(
        "fjord.partition.open.wait.ms",
        Int,
        int(0, I32_MAX),
        "1000",
        "Fjord: how long a request waits for its partition's log to be opened (recovered) \
         before it is answered NOT_LEADER_OR_FOLLOWER (a coordinator: \
         COORDINATOR_LOAD_IN_PROGRESS), so clients retry.",
    ),
    key(
        "fjord.io.uring.entries",
        Int,
        int(8, 32768),
        "256",
        "Fjord: the io_uring submission queue size per shard.",
    ),
    key(
        "fjord.metrics.listener",
        Str,
        StaticRule::Str,
        "",
        "Fjord: host:port of the Prometheus endpoint; empty is off.",
    ),
    key(
        "fjord.cluster.id",
        Str,
        StaticRule::Str,
        "",
        "Fjord: the cluster id reported to clients.",
    ),
];

/// A key `config.rs` checks and reads itself: the broker's own keys and the topic
/// synonyms it reads into `Config`.
#[derive(Clone, Copy, Debug)]
pub struct StartupKey {
    pub name: &'static str,
    pub rule: StaticRule,
    pub default: &'static str,
}

/// Every key `config.rs` checks by a [`StaticRule`]. Any other key is either a topic
/// config's broker synonym (checked by [`validate_static`]) or unknown.
pub fn startup_keys() -> impl Iterator<Item = StartupKey> {
    let own = BROKER_KEYS.iter().map(|k| StartupKey {
        name: k.name,
        rule: k.rule,
        default: k.default,
    });
    let synonyms = TOPIC_CONFIGS.iter().filter_map(|t| {
        let b = t.broker?;
        Some(StartupKey {
            name: b.name,
            rule: b.startup?,
            default: b.default.or(t.def.default).unwrap_or(""),
        })
    });
    own.chain(synonyms)
}

/// The start-up key named `name`.
pub fn startup_key(name: &str) -> Option<StartupKey> {
    startup_keys().find(|k| k.name == name)
}

/// Kafka's broker key named `name` ([`KAFKA_KEYS`] is sorted by name).
pub fn kafka_key(name: &str) -> Option<&'static KafkaKey> {
    KAFKA_KEYS
        .binary_search_by(|k| k.name.cmp(name))
        .ok()
        .map(|i| &KAFKA_KEYS[i])
}

/// The broker synonym whose coarser fallbacks include `name` (`log.retention.hours`
/// of `log.retention.ms`).
pub fn fallback_of(name: &str) -> Option<BrokerSynonym> {
    TOPIC_CONFIGS
        .iter()
        .filter_map(|t| t.broker)
        .find(|b| b.fallback.iter().any(|f| f.name == name))
}

/// Kafka keys whose other values Fjord cannot honour: only Kafka's default is
/// accepted, with the reason.
const DEFAULT_ONLY: &[(&str, &str)] = &[
    (
        "delete.topic.enable",
        "Fjord always allows topics to be deleted",
    ),
    ("log.cleaner.enable", "Fjord always cleans compacted topics"),
];

macro_rules! inert_reasons {
    ($($id:ident = $text:literal,)*) => {
        /// Why a Kafka broker key that is not in Fjord's catalogue has no effect.
        #[derive(Clone, Copy, Debug, PartialEq, Eq)]
        pub enum Inert {
            $($id,)*
        }

        impl Inert {
            /// The reason, as the start-up line gives it.
            pub fn reason(self) -> &'static str {
                match self {
                    $(Inert::$id => $text,)*
                }
            }

            /// The documentation DescribeConfigs gives the key.
            pub fn doc(self) -> &'static str {
                match self {
                    $(Inert::$id => concat!(
                        "Accepted for compatibility; no effect in Fjord: ", $text, "."
                    ),)*
                }
            }
        }
    };
}

inert_reasons! {
    Threads = "Fjord runs one shard per core (fjord.cores), with no thread pools or request queues",
    Purgatory = "Fjord has no request purgatories to purge",
    Transactions = "transactions are not implemented yet",
    ShareGroups = "share groups are not implemented yet",
    StreamsGroups = "streams groups are not implemented",
    Security = "security (TLS, SASL, ACLs) is not implemented yet: every listener is PLAINTEXT",
    TieredStorage = "tiered storage is not implemented",
    Metrics = "Fjord exports its metrics on fjord.metrics.listener (Prometheus)",
    Quorum = "Fjord's metadata quorum (openraft) keeps its own timing, batching and snapshots",
    Quotas = "Fjord enforces only the client quotas AlterClientQuotas sets, measured over \
              quota.window.num samples of quota.window.size.seconds",
    Classes = "Fjord cannot load Java classes",
    Storage = "Fjord's storage flushes and cleans on its own schedule and buffers",
    Other = "Fjord does not implement this setting",
}

/// Why the Kafka broker key `name` has no effect in Fjord.
pub fn inert(name: &str) -> Inert {
    const THREADS: &[&str] = &[
        "background.threads",
        "num.io.threads",
        "num.network.threads",
        "num.replica.fetchers",
        "num.replica.alter.log.dirs.threads",
        "group.coordinator.threads",
        "share.coordinator.threads",
        "log.cleaner.threads",
        "queued.max.requests",
        "queued.max.request.bytes",
    ];
    const SECURITY: &[&str] = &[
        "ssl.",
        "sasl.",
        "security.",
        "delegation.token.",
        "principal.builder.class",
        "authorizer.class.name",
        "connections.max.reauth.ms",
        "connection.failed.authentication.delay.ms",
        "early.start.listeners",
        "listener.name.",
    ];
    const QUORUM: &[&str] = &[
        "metadata.",
        "controller.",
        "internal.metadata.",
        "initial.broker.registration.timeout.ms",
    ];
    let starts = |p: &[&str]| p.iter().any(|p| name.starts_with(p));
    if THREADS.contains(&name) {
        Inert::Threads
    } else if name.ends_with(".purgatory.purge.interval.requests") {
        Inert::Purgatory
    } else if starts(&[
        "transaction",
        "add.partitions.to.txn.",
        "producer.id.expiration.",
    ]) {
        Inert::Transactions
    } else if starts(&["share.", "group.share."]) {
        Inert::ShareGroups
    } else if starts(&["group.streams."]) {
        Inert::StreamsGroups
    } else if starts(SECURITY) {
        Inert::Security
    } else if starts(&["remote."]) {
        Inert::TieredStorage
    } else if starts(&["metric.reporters", "metrics.", "kafka.metrics."]) {
        Inert::Metrics
    } else if starts(&["quota.", "client.quota.", "controller.quota."]) || name.contains(".quota.")
    {
        Inert::Quotas
    } else if starts(QUORUM) {
        Inert::Quorum
    } else if name.ends_with(".policy.class.name") || name == "replica.selector.class" {
        Inert::Classes
    } else if starts(&["log.flush.", "log.cleaner."]) {
        Inert::Storage
    } else {
        Inert::Other
    }
}

/// What start-up does with a key of `server.properties` or `--override`.
#[derive(Clone, Copy, Debug)]
pub enum Startup {
    /// `config.rs` checks and reads it.
    Read(StartupKey),
    /// A topic config's broker synonym: checked by the topic config's rule.
    TopicSynonym,
    /// A coarser fallback of a synonym (`log.retention.hours`): checked by Kafka's
    /// rule and honoured.
    Fallback(&'static KafkaKey),
    /// A Kafka key Fjord does not act on: checked by Kafka's rule, then named in one
    /// start-up line with its [`Inert`] reason.
    Inert(Option<&'static KafkaKey>),
    /// In no Kafka version and not Fjord's own.
    Unknown,
}

/// Classifies a start-up key.
pub fn startup(name: &str) -> Startup {
    if let Some(k) = startup_key(name) {
        return Startup::Read(k);
    }
    if topic_of(name).is_some() {
        return Startup::TopicSynonym;
    }
    match kafka_key(name) {
        Some(k) if fallback_of(name).is_some() => Startup::Fallback(k),
        Some(k) => Startup::Inert(Some(k)),
        // Kafka's per-listener overrides: `listener.name.<listener>.<config>`.
        None if name.starts_with("listener.name.") && name.matches('.').count() >= 3 => {
            Startup::Inert(None)
        }
        None => Startup::Unknown,
    }
}

/// Checks the value of a Kafka key that `config.rs` does not read itself: Kafka's
/// type and validator, and for [`DEFAULT_ONLY`] keys, Kafka's default.
pub fn validate_kafka(key: &KafkaKey, value: &str) -> Result<(), ConfigError> {
    let def = ConfigDef {
        name: key.name,
        ty: key.ty,
        default: key.default,
        valid: key.valid,
        fjord_acts: true,
        doc: "",
    };
    let v = def.validate(value)?;
    if let Some((_, why)) = DEFAULT_ONLY.iter().find(|(n, _)| *n == key.name) {
        if Some(v.as_str()) != key.default {
            return Err(ConfigError(format!(
                "{}: invalid value '{v}': {why}; only {} may be set",
                key.name,
                key.default.unwrap_or("null")
            )));
        }
    }
    Ok(())
}

/// Checks a coarser fallback (`log.retention.hours`): Kafka's rule, and when Fjord
/// does not act on the topic config it falls back for, Kafka's default only.
pub fn validate_fallback(key: &KafkaKey, value: &str) -> Result<(), ConfigError> {
    validate_kafka(key, value)?;
    let acts = TOPIC_CONFIGS
        .iter()
        .filter(|t| {
            t.broker
                .is_some_and(|b| b.fallback.iter().any(|f| f.name == key.name))
        })
        .all(|t| t.def.fjord_acts);
    if !acts && Some(value.trim()) != key.default {
        return Err(ConfigError(format!(
            "{}: invalid value '{value}': Fjord does not support this config; only its \
             default ({}) may be set",
            key.name,
            key.default.unwrap_or("null")
        )));
    }
    Ok(())
}

/// The known key nearest to `name`, for an "unknown key" error: Fjord's keys, the
/// topic synonyms and Kafka's keys.
pub fn suggestion(name: &str) -> Option<&'static str> {
    let synonyms = TOPIC_CONFIGS
        .iter()
        .filter_map(|t| t.broker)
        .map(|b| b.name);
    let (best, distance) = BROKER_KEYS
        .iter()
        .map(|k| k.name)
        .chain(synonyms)
        .chain(KAFKA_KEYS.iter().filter(|k| !k.internal).map(|k| k.name))
        .map(|k| (k, strsim::damerau_levenshtein(name, k)))
        .min_by_key(|(_, d)| *d)?;
    // Close enough to be a typo: a few edits, and under a third of the name.
    (distance <= 3 && distance * 3 < name.len()).then_some(best)
}

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
        None if BROKER_KEYS.iter().any(|k| k.dynamic && k.name == name) => {
            let key = BROKER_KEYS
                .iter()
                .find(|k| k.name == name)
                .expect("just found");
            let valid = match key.rule {
                StaticRule::Int { min, max } => super::Valid::Range { min, max },
                _ => super::Valid::Any,
            };
            ConfigDef {
                name: key.name,
                ty: key.ty,
                default: Some(key.default),
                valid,
                fjord_acts: true,
                doc: key.doc,
            }
            .validate(value)
        }
        None if BROKER_KEYS.iter().any(|k| k.name == name) => Err(ConfigError(format!(
            "Cannot update these configs dynamically: [{name}]"
        ))),
        None if kafka_key(name).is_some() => Err(ConfigError(format!(
            "Cannot update these configs dynamically: [{name}] (no effect in Fjord: {})",
            inert(name).reason()
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
/// `createBrokerConfigEntry` reports them: Fjord's own keys, the topic synonyms, then
/// every other key of Kafka's (not its internal ones), read-only, with the value given
/// at start-up or Kafka's default and a doc that says whether Fjord acts on it.
/// `fjord_default` gives the default of a key of [`BROKER_KEYS`] (`config::default_of`,
/// the catalogue's).
pub fn describe_broker(
    layers: &Layers<'_>,
    fjord_default: impl Fn(&str) -> Option<&'static str>,
) -> Vec<Described> {
    let mut out = Vec::new();
    for key in BROKER_KEYS {
        let synonyms = layers.broker_synonyms(&[key.name], |n| fjord_default(n));
        out.push(entry(key.name, key.ty, key.doc, !key.dynamic, synonyms));
    }
    for t in TOPIC_CONFIGS {
        let Some(b) = t.broker else { continue };
        let synonyms = layers.broker_synonyms(&b.chain(), |n| b.default_of(n));
        out.push(entry(b.name, t.def.ty, t.def.doc, !b.dynamic, synonyms));
    }
    let listed: std::collections::HashSet<String> = out.iter().map(|d| d.name.clone()).collect();
    for k in KAFKA_KEYS.iter().filter(|k| !k.internal) {
        if listed.contains(k.name) {
            continue;
        }
        let (synonyms, doc) = match fallback_of(k.name) {
            Some(b) => (
                layers.broker_synonyms_of(k.name, &b.chain(), |n| b.default_of(n)),
                "A coarser unit of the setting named first among its synonyms, used when \
                 that one is not set.",
            ),
            None => (
                layers.broker_synonyms(&[k.name], |_| k.default),
                inert(k.name).doc(),
            ),
        };
        let mut d = entry(k.name, k.ty, doc, true, synonyms);
        if k.ty == ConfigType::Password {
            d.sensitive = true;
            d.value = None;
            d.synonyms.iter_mut().for_each(|s| s.value = None);
        }
        out.push(d);
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
            let (ty, doc) = match topic_of(k) {
                Some(t) => (t.def.ty, t.def.doc),
                None => {
                    let key = BROKER_KEYS.iter().find(|b| b.dynamic && b.name == k)?;
                    (key.ty, key.doc)
                }
            };
            let synonyms = vec![super::Synonym {
                name: k.clone(),
                value: Some(v.clone()),
                source: Source::DynamicDefaultBroker,
            }];
            Some(entry(k, ty, doc, false, synonyms))
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
