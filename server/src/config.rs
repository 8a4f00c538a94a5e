//! Broker configuration, read the Kafka way: a `server.properties` file plus
//! `--override key=value` pairs, with Kafka's key names and Kafka's defaults.
//!
//! Invariant: every key a user may set is in the broker key catalogue
//! (`configs::broker`); an unknown key or a value that does not parse stops start-up
//! with an error naming the key. This file holds no key list of its own: it parses
//! the catalogue's [`StaticRule`]s and reads the values into [`Config`].

use std::collections::BTreeMap;
use std::fmt;
use std::net::{SocketAddr, ToSocketAddrs};
use std::path::PathBuf;

use crate::configs::broker;
use crate::configs::broker::{Inert, Startup};
use crate::configs::{Layers, StaticRule};

/// A configuration error: always names the key.
#[derive(Debug)]
pub struct ConfigError(pub String);

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for ConfigError {}

/// A listener: `NAME://host:port`.
#[derive(Clone, Debug, PartialEq)]
pub struct Listener {
    pub name: String,
    pub host: String,
    pub port: u16,
}

impl Listener {
    /// The socket address to bind: an empty host binds every interface.
    pub fn bind_addr(&self) -> Result<SocketAddr, ConfigError> {
        let host = if self.host.is_empty() {
            "0.0.0.0"
        } else {
            &self.host
        };
        (host, self.port)
            .to_socket_addrs()
            .ok()
            .and_then(|mut a| {
                a.find(|a| a.is_ipv4())
                    .or_else(|| (host, self.port).to_socket_addrs().ok()?.next())
            })
            .ok_or_else(|| ConfigError(format!("listeners: cannot resolve host '{host}'")))
    }
}

/// The validated broker configuration.
///
/// Built once at start-up; shards hold it in an `Arc` and never mutate it.
#[derive(Clone, Debug)]
pub struct Config {
    pub node_id: i32,
    pub listeners: Vec<Listener>,
    pub advertised_listeners: Vec<Listener>,
    pub log_dirs: PathBuf,
    pub num_partitions: i32,
    pub default_replication_factor: i16,
    pub auto_create_topics_enable: bool,
    pub log_segment_bytes: i64,
    pub log_roll_ms: i64,
    pub log_retention_ms: i64,
    pub log_retention_bytes: i64,
    pub log_retention_check_interval_ms: i64,
    /// How often each shard looks for compacted partitions due for cleaning.
    pub log_cleaner_backoff_ms: i64,
    /// `replica.high.watermark.checkpoint.interval.ms`.
    pub replica_high_watermark_checkpoint_interval_ms: i64,
    pub log_index_interval_bytes: i64,
    pub log_index_size_max_bytes: i64,
    pub log_segment_delete_delay_ms: i64,
    pub log_message_timestamp_type_log_append: bool,
    pub log_flush_interval_messages: i64,
    pub message_max_bytes: i64,
    pub socket_request_max_bytes: i64,
    pub fetch_max_bytes: i64,
    /// Client quotas: samples kept, and each one's span in seconds.
    pub quota_window_num: i64,
    pub quota_window_size_seconds: i64,
    pub max_connections: i64,
    /// `max.connections.per.ip`, and the addresses with a limit of their own.
    pub max_connections_per_ip: i64,
    pub max_connections_per_ip_overrides: Vec<(std::net::IpAddr, i64)>,
    /// `connections.max.idle.ms` (negative: never).
    pub connections_max_idle_ms: i64,
    pub group_initial_rebalance_delay_ms: i64,
    /// KIP-848 consumer groups: a member silent this long is removed.
    pub group_consumer_session_timeout_ms: i64,
    /// KIP-848 consumer groups: the heartbeat interval members are told to keep.
    pub group_consumer_heartbeat_interval_ms: i64,
    pub offsets_topic_num_partitions: i64,
    pub offsets_topic_replication_factor: i64,
    /// Committed offsets of a group expire this long after it became empty (or after
    /// their commit, see `group::coordinator::expiry`).
    pub offsets_retention_ms: i64,
    /// How often each shard looks for expired offsets.
    pub offsets_retention_check_interval_ms: i64,
    /// Number of shards (one per core); 0 in the file means "all cores".
    pub cores: usize,
    pub max_inflight_requests_per_connection: usize,
    pub max_partitions_per_request: usize,
    /// `max.incremental.fetch.session.cache.slots`: fetch sessions the node keeps
    /// (spread over its shards).
    pub fetch_session_cache_slots: usize,
    pub tail_cache_bytes: usize,
    /// `fjord.partition.open.wait.ms`.
    pub partition_open_wait_ms: u64,
    /// `num.recovery.threads.per.data.dir`: partition logs opened at once.
    pub num_recovery_threads_per_data_dir: usize,
    pub io_uring_entries: u32,
    /// `host:port` of the Prometheus endpoint, or None (the default: off).
    pub metrics_listener: Option<String>,
    pub cluster_id: String,
    /// `controller.quorum.voters`: voter id → `host:port` of its controller listener.
    /// Empty: this node is a one-voter quorum.
    pub quorum_voters: BTreeMap<u64, String>,
    /// `controller.listener.names`: listeners that carry controller traffic only.
    pub controller_listener_names: Vec<String>,
    pub broker_session_timeout_ms: i64,
    pub broker_heartbeat_interval_ms: i64,
    pub replica_lag_time_max_ms: i64,
    pub auto_leader_rebalance_enable: bool,
    pub leader_imbalance_check_interval_seconds: i64,
    pub leader_imbalance_per_broker_percentage: i64,
    /// `fjord.auto.rebalance.enable` and its check interval and batch size.
    pub auto_rebalance_enable: bool,
    pub auto_rebalance_check_interval_ms: i64,
    pub auto_rebalance_max_partitions: i64,
    pub replica_fetch_wait_max_ms: i64,
    pub replica_fetch_max_bytes: i64,
    pub replica_fetch_response_max_bytes: i64,
    pub replica_fetch_backoff_ms: i64,
    /// The most partitions one DescribeTopicPartitions answer lists.
    pub max_request_partition_size_limit: i32,
    /// `fjord.replication.durable.high.watermark`.
    pub replication_durable_high_watermark: bool,
    /// `socket.send.buffer.bytes` / `socket.receive.buffer.bytes` of client
    /// connections; -1 keeps the operating system's default.
    pub socket_send_buffer_bytes: i32,
    pub socket_receive_buffer_bytes: i32,
    /// Kafka keys given that Fjord accepts but does not act on, with the reason
    /// (named in one line at start-up).
    pub inert_keys: Vec<(String, Inert)>,
    /// Every key given in the file or by `--override`, as given (validated): the
    /// static layer of the config model (`configs`).
    pub properties: BTreeMap<String, String>,
}

/// The start-up default of a key `config.rs` reads, from the catalogue (Kafka's
/// unless Fjord's own).
pub fn default_of(name: &str) -> Option<&'static str> {
    broker::startup_key(name).map(|k| k.default)
}

/// Parses a Kafka-style properties text: `key=value` or `key: value` lines, `#`/`!`
/// comments, surrounding whitespace trimmed. Later keys win.
pub fn parse_properties(text: &str) -> Result<BTreeMap<String, String>, ConfigError> {
    let mut out = BTreeMap::new();
    for (n, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') || line.starts_with('!') {
            continue;
        }
        let Some(split) = line.find(['=', ':']) else {
            return Err(ConfigError(format!(
                "line {}: expected key=value, got '{line}'",
                n + 1
            )));
        };
        let (k, v) = (line[..split].trim(), line[split + 1..].trim());
        out.insert(k.to_string(), v.to_string());
    }
    Ok(out)
}

/// Splits `key=value` as given to `--override`.
pub fn parse_override(s: &str) -> Result<(String, String), ConfigError> {
    match s.split_once('=') {
        Some((k, v)) if !k.trim().is_empty() => Ok((k.trim().to_string(), v.trim().to_string())),
        _ => Err(ConfigError(format!("--override '{s}': expected key=value"))),
    }
}

fn parse_listeners(key: &str, v: &str) -> Result<Vec<Listener>, ConfigError> {
    let mut out = Vec::new();
    for item in v.split(',').map(str::trim).filter(|s| !s.is_empty()) {
        let err = || ConfigError(format!("{key}: '{item}' is not NAME://host:port"));
        let (name, rest) = item.split_once("://").ok_or_else(err)?;
        let (host, port) = rest.rsplit_once(':').ok_or_else(err)?;
        let port: u16 = port.parse().map_err(|_| err())?;
        let host = host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_string();
        out.push(Listener {
            name: name.to_string(),
            host,
            port,
        });
    }
    Ok(out)
}

/// Parses `controller.quorum.voters`: `id@host:port,...`.
fn parse_voters(v: &str) -> Result<BTreeMap<u64, String>, ConfigError> {
    let mut out = BTreeMap::new();
    for item in v.split(',').map(str::trim).filter(|s| !s.is_empty()) {
        let err = || {
            ConfigError(format!(
                "controller.quorum.voters: '{item}' is not id@host:port"
            ))
        };
        let (id, addr) = item.split_once('@').ok_or_else(err)?;
        let id: u64 = id.parse().map_err(|_| err())?;
        let (_, port) = addr.rsplit_once(':').ok_or_else(err)?;
        port.parse::<u16>().map_err(|_| err())?;
        if out.insert(id, addr.to_string()).is_some() {
            return Err(ConfigError(format!(
                "controller.quorum.voters: voter {id} is listed twice"
            )));
        }
    }
    Ok(out)
}

/// Kafka's security protocols.
const PROTOCOLS: &[&str] = &["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"];

/// Parses `listener.security.protocol.map`: `NAME:PROTOCOL,...`.
fn parse_protocol_map(v: &str) -> Result<BTreeMap<String, String>, String> {
    let mut out = BTreeMap::new();
    for item in v.split(',').map(str::trim).filter(|s| !s.is_empty()) {
        match item.split_once(':') {
            Some((name, proto)) if PROTOCOLS.contains(&proto.trim()) => {
                out.insert(name.trim().to_string(), proto.trim().to_string());
            }
            _ => {
                return Err(format!(
                    "'{item}' is not NAME:PROTOCOL (one of {})",
                    PROTOCOLS.join(", ")
                ))
            }
        }
    }
    Ok(out)
}

fn check(name: &str, rule: StaticRule, v: &str) -> Result<(), ConfigError> {
    let bad = |why: &str| ConfigError(format!("{name}: invalid value '{v}': {why}"));
    match rule {
        StaticRule::Int { min, max } => {
            let n: i64 = v.parse().map_err(|_| bad("not an integer"))?;
            if n < min || n > max {
                return Err(bad(&format!("must be in [{min}, {max}]")));
            }
        }
        StaticRule::Bool => {
            if !matches!(v.to_ascii_lowercase().as_str(), "true" | "false") {
                return Err(bad("expected true or false"));
            }
        }
        StaticRule::TimestampType => {
            if v != "CreateTime" && v != "LogAppendTime" {
                return Err(bad("expected CreateTime or LogAppendTime"));
            }
        }
        StaticRule::Listeners => {
            parse_listeners(name, v)?;
        }
        StaticRule::Voters => {
            parse_voters(v)?;
        }
        StaticRule::ProcessRoles => {
            let mut roles: Vec<&str> = v.split(',').map(str::trim).collect();
            roles.sort_unstable();
            if roles != ["broker", "controller"] {
                return Err(bad(
                    "Fjord runs in combined mode only: process.roles=broker,controller",
                ));
            }
        }
        StaticRule::ProtocolMap => {
            parse_protocol_map(v).map_err(|e| bad(&e))?;
        }
        StaticRule::HostPorts => {
            for item in v.split(',').map(str::trim).filter(|s| !s.is_empty()) {
                match item.rsplit_once(':') {
                    Some((host, port)) if !host.is_empty() && port.parse::<u16>().is_ok() => {}
                    _ => return Err(bad(&format!("'{item}' is not host:port"))),
                }
            }
        }
        StaticRule::Str => {}
    }
    Ok(())
}

/// With `controller.quorum.voters` empty, `controller.quorum.bootstrap.servers` (KIP-853)
/// may name only this node's own controller listener: the node is the quorum's one
/// voter, as Kafka after `kafka-storage format --standalone`. Joining a quorum of
/// several nodes that way is refused, naming the static alternative.
fn check_standalone_bootstrap(
    servers: &str,
    listeners: &[Listener],
    is_controller: impl Fn(&Listener) -> bool,
) -> Result<(), ConfigError> {
    let servers: Vec<&str> = servers
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .collect();
    if servers.is_empty() {
        return Ok(());
    }
    let err = |why: &str| {
        ConfigError(format!(
            "controller.quorum.bootstrap.servers: {why}; Fjord forms a quorum of several \
             nodes from controller.quorum.voters (id@host:port,...)"
        ))
    };
    let Some(own) = listeners.iter().find(|l| is_controller(l)) else {
        return Err(err("this node has no controller listener"));
    };
    let [server] = servers[..] else {
        return Err(err("several servers are listed"));
    };
    let (host, port) = server.rsplit_once(':').unwrap_or((server, ""));
    let same_host = own.host.is_empty()
        || own.host == "0.0.0.0"
        || own.host == host
        || (host == "localhost" && own.host.starts_with("127."));
    if port != own.port.to_string() || !same_host {
        return Err(err(&format!(
            "{server} is not this node's controller listener ({}:{})",
            own.host, own.port
        )));
    }
    Ok(())
}

impl Config {
    /// Validates `values` (file keys then overrides, merged) against the catalogue
    /// and fills in its defaults.
    pub fn from_map(values: &BTreeMap<String, String>) -> Result<Config, ConfigError> {
        let mut inert_keys = Vec::new();
        for (k, v) in values {
            let kafka = |key| broker::validate_kafka(key, v).map_err(|e| ConfigError(e.0));
            match broker::startup(k) {
                Startup::Read(key) => check(key.name, key.rule, v)?,
                // The broker name of a topic config (log.cleanup.policy, ...).
                Startup::TopicSynonym => {
                    broker::validate_static(k, v).map_err(|e| ConfigError(e.0))?
                }
                Startup::Fallback(key) => {
                    broker::validate_fallback(key, v).map_err(|e| ConfigError(e.0))?
                }
                Startup::Inert(key) => {
                    if let Some(key) = key {
                        kafka(key)?;
                    }
                    inert_keys.push((k.clone(), broker::inert(k)));
                }
                Startup::Unknown => {
                    return Err(ConfigError(match broker::suggestion(k) {
                        Some(s) => format!("{k}: unknown configuration key; did you mean {s}?"),
                        None => format!("{k}: unknown configuration key"),
                    }))
                }
            }
        }
        let get = |name: &str| -> &str {
            values
                .get(name)
                .map(String::as_str)
                .unwrap_or_else(|| default_of(name).unwrap_or(""))
        };
        // Values were checked above; defaults are checked by a unit test.
        let int = |name: &str| get(name).parse::<i64>().unwrap_or(0);
        let listeners = parse_listeners("listeners", get("listeners"))?;
        if listeners.is_empty() {
            return Err(ConfigError(
                "listeners: at least one listener is required".into(),
            ));
        }
        let controller_listener_names: Vec<String> = get("controller.listener.names")
            .split(',')
            .map(|s| s.trim().to_string())
            .filter(|s| !s.is_empty())
            .collect();
        if listeners
            .iter()
            .all(|l| controller_listener_names.contains(&l.name))
        {
            return Err(ConfigError(
                "listeners: a listener for clients (not in controller.listener.names) is required"
                    .into(),
            ));
        }
        let node_id = int("node.id");
        match int("broker.id") {
            -1 => {}
            b if b == node_id => {}
            b => {
                return Err(ConfigError(format!(
                    "broker.id: {b} differs from node.id {node_id}; in KRaft mode they must \
                     be equal when broker.id is set"
                )))
            }
        }
        let protocols =
            parse_protocol_map(get("listener.security.protocol.map")).map_err(ConfigError)?;
        for l in &listeners {
            let protocol = match protocols.get(&l.name) {
                Some(p) => p.as_str(),
                None if PROTOCOLS.contains(&l.name.as_str()) => l.name.as_str(),
                None if controller_listener_names.contains(&l.name) => "PLAINTEXT",
                None => {
                    return Err(ConfigError(format!(
                        "listener.security.protocol.map: no security protocol for listener {}",
                        l.name
                    )))
                }
            };
            if protocol != "PLAINTEXT" {
                return Err(ConfigError(format!(
                    "listener.security.protocol.map: listener {} uses {protocol}; Fjord \
                     supports PLAINTEXT listeners only",
                    l.name
                )));
            }
        }
        let quorum_voters = parse_voters(get("controller.quorum.voters"))?;
        if quorum_voters.is_empty() {
            check_standalone_bootstrap(get("controller.quorum.bootstrap.servers"), &listeners, {
                let names = &controller_listener_names;
                move |l: &Listener| names.contains(&l.name)
            })?;
        }
        if !quorum_voters.is_empty() && !quorum_voters.contains_key(&(node_id as u64)) {
            return Err(ConfigError(format!(
                "controller.quorum.voters: node.id {node_id} is not a voter (combined mode needs \
                 every node to be one)"
            )));
        }
        let mut advertised = parse_listeners("advertised.listeners", get("advertised.listeners"))?;
        if advertised.is_empty() {
            advertised = listeners.clone();
        }
        for l in &mut advertised {
            if l.host.is_empty() || l.host == "0.0.0.0" {
                l.host = "localhost".into();
            }
        }
        let client = listeners
            .iter()
            .find(|l| !controller_listener_names.contains(&l.name))
            .map(|l| l.name.clone())
            .unwrap_or_default();
        match get("inter.broker.listener.name") {
            "" => {}
            n if n == client => {}
            n => {
                return Err(ConfigError(format!(
                    "inter.broker.listener.name: {n} is not the listener Fjord serves \
                     clients and replicas on ({client}); Fjord uses one listener for both"
                )))
            }
        }
        let log_dirs = match (values.get("log.dirs"), values.get("log.dir")) {
            (Some(d), _) | (None, Some(d)) => d.trim().to_string(),
            (None, None) => get("log.dirs").to_string(),
        };
        if log_dirs.contains(',') {
            return Err(ConfigError(format!(
                "log.dirs: '{log_dirs}' names several directories; Fjord keeps its data in \
                 one directory"
            )));
        }
        let layers = Layers {
            dynamic_broker: None,
            dynamic_default: None,
            static_props: values,
        };
        // A topic config's broker synonym through its fallbacks (log.retention.hours).
        let synonym = |name: &str| {
            broker::topic_of(name)
                .and_then(|t| t.broker)
                .and_then(|b| b.resolve(&layers))
                .and_then(|v| v.parse::<i64>().ok())
                .unwrap_or(0)
        };
        let cores = match int("fjord.cores") {
            0 => std::thread::available_parallelism()
                .map(|n| n.get())
                .unwrap_or(1),
            n => n as usize,
        };
        let metrics = get("fjord.metrics.listener");
        let cluster_id = match get("fjord.cluster.id") {
            "" => "fjord-cluster".to_string(),
            s => s.to_string(),
        };
        Ok(Config {
            node_id: node_id as i32,
            listeners,
            advertised_listeners: advertised,
            log_dirs: PathBuf::from(log_dirs),
            num_partitions: int("num.partitions") as i32,
            default_replication_factor: int("default.replication.factor") as i16,
            auto_create_topics_enable: get("auto.create.topics.enable")
                .eq_ignore_ascii_case("true"),
            log_segment_bytes: int("log.segment.bytes"),
            log_roll_ms: synonym("log.roll.ms"),
            log_retention_ms: synonym("log.retention.ms"),
            log_retention_bytes: int("log.retention.bytes"),
            log_retention_check_interval_ms: int("log.retention.check.interval.ms"),
            log_cleaner_backoff_ms: int("log.cleaner.backoff.ms"),
            replica_high_watermark_checkpoint_interval_ms: int(
                "replica.high.watermark.checkpoint.interval.ms",
            ),
            log_index_interval_bytes: int("log.index.interval.bytes"),
            log_index_size_max_bytes: int("log.index.size.max.bytes"),
            log_segment_delete_delay_ms: int("log.segment.delete.delay.ms"),
            log_message_timestamp_type_log_append: get("log.message.timestamp.type")
                == "LogAppendTime",
            log_flush_interval_messages: int("log.flush.interval.messages"),
            message_max_bytes: int("message.max.bytes"),
            socket_request_max_bytes: int("socket.request.max.bytes"),
            fetch_max_bytes: int("fetch.max.bytes"),
            quota_window_num: int("quota.window.num"),
            quota_window_size_seconds: int("quota.window.size.seconds"),
            max_connections: int("max.connections"),
            max_connections_per_ip: int("max.connections.per.ip"),
            max_connections_per_ip_overrides: parse_per_ip_overrides(get(
                "max.connections.per.ip.overrides",
            ))?,
            connections_max_idle_ms: int("connections.max.idle.ms"),
            group_initial_rebalance_delay_ms: int("group.initial.rebalance.delay.ms"),
            group_consumer_session_timeout_ms: int("group.consumer.session.timeout.ms"),
            group_consumer_heartbeat_interval_ms: int("group.consumer.heartbeat.interval.ms"),
            offsets_topic_num_partitions: int("offsets.topic.num.partitions"),
            offsets_topic_replication_factor: int("offsets.topic.replication.factor"),
            offsets_retention_ms: int("offsets.retention.minutes") * 60_000,
            offsets_retention_check_interval_ms: int("offsets.retention.check.interval.ms"),
            cores,
            max_inflight_requests_per_connection: int("fjord.max.inflight.requests.per.connection")
                as usize,
            max_partitions_per_request: int("fjord.max.partitions.per.request") as usize,
            fetch_session_cache_slots: int("max.incremental.fetch.session.cache.slots") as usize,
            tail_cache_bytes: int("fjord.tail.cache.bytes") as usize,
            partition_open_wait_ms: int("fjord.partition.open.wait.ms") as u64,
            num_recovery_threads_per_data_dir: int("num.recovery.threads.per.data.dir") as usize,
            io_uring_entries: int("fjord.io.uring.entries") as u32,
            metrics_listener: (!metrics.is_empty()).then(|| metrics.to_string()),
            cluster_id,
            quorum_voters,
            controller_listener_names,
            broker_session_timeout_ms: int("broker.session.timeout.ms"),
            broker_heartbeat_interval_ms: int("broker.heartbeat.interval.ms"),
            replica_lag_time_max_ms: int("replica.lag.time.max.ms"),
            auto_leader_rebalance_enable: get("auto.leader.rebalance.enable")
                .eq_ignore_ascii_case("true"),
            leader_imbalance_check_interval_seconds: int("leader.imbalance.check.interval.seconds"),
            leader_imbalance_per_broker_percentage: int("leader.imbalance.per.broker.percentage"),
            auto_rebalance_enable: get("fjord.auto.rebalance.enable").eq_ignore_ascii_case("true"),
            auto_rebalance_check_interval_ms: int("fjord.auto.rebalance.check.interval.ms"),
            auto_rebalance_max_partitions: int("fjord.auto.rebalance.max.partitions"),
            replica_fetch_wait_max_ms: int("replica.fetch.wait.max.ms"),
            replica_fetch_max_bytes: int("replica.fetch.max.bytes"),
            replica_fetch_response_max_bytes: int("replica.fetch.response.max.bytes"),
            replica_fetch_backoff_ms: int("replica.fetch.backoff.ms"),
            max_request_partition_size_limit: int("max.request.partition.size.limit")
                .clamp(1, i32::MAX as i64) as i32,
            replication_durable_high_watermark: get("fjord.replication.durable.high.watermark")
                .eq_ignore_ascii_case("true"),
            socket_send_buffer_bytes: int("socket.send.buffer.bytes") as i32,
            socket_receive_buffer_bytes: int("socket.receive.buffer.bytes") as i32,
            inert_keys,
            properties: values.clone(),
        })
    }

    fn is_controller_listener(&self, l: &Listener) -> bool {
        self.controller_listener_names.contains(&l.name)
    }

    /// The listener clients connect to (the first one not for controller traffic;
    /// `from_map` checks there is one).
    pub fn client_listener(&self) -> &Listener {
        self.listeners
            .iter()
            .find(|l| !self.is_controller_listener(l))
            .unwrap_or(&self.listeners[0])
    }

    /// The listener for controller traffic (Raft), if one is configured.
    pub fn controller_listener(&self) -> Option<&Listener> {
        self.listeners
            .iter()
            .find(|l| self.is_controller_listener(l))
    }

    /// The address advertised to clients in Metadata.
    pub fn advertised(&self) -> &Listener {
        self.advertised_listeners
            .iter()
            .find(|l| !self.is_controller_listener(l))
            .unwrap_or_else(|| self.client_listener())
    }
}

/// `max.connections.per.ip.overrides`: `host:count,...`; a host name stands for every
/// address it resolves to now (as Kafka resolves it at start-up).
fn parse_per_ip_overrides(value: &str) -> Result<Vec<(std::net::IpAddr, i64)>, ConfigError> {
    use std::net::ToSocketAddrs;
    let key = "max.connections.per.ip.overrides";
    let mut out = Vec::new();
    for entry in value.split(',').map(str::trim).filter(|e| !e.is_empty()) {
        let bad = |why: &str| ConfigError(format!("{key}: {entry:?} {why}"));
        let (host, count) = entry
            .rsplit_once(':')
            .ok_or_else(|| bad("is not host:count"))?;
        let count: i64 = count
            .trim()
            .parse()
            .ok()
            .filter(|c| (0..=i32::MAX as i64).contains(c))
            .ok_or_else(|| bad("needs a count from 0 to 2147483647"))?;
        let host = host.trim().trim_start_matches('[').trim_end_matches(']');
        let addrs: Vec<std::net::IpAddr> = match host.parse::<std::net::IpAddr>() {
            Ok(ip) => vec![ip],
            Err(_) => (host, 0)
                .to_socket_addrs()
                .map_err(|_| bad("names a host that does not resolve"))?
                .map(|a| a.ip())
                .collect(),
        };
        out.extend(addrs.into_iter().map(|ip| (ip, count)));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn per_ip_overrides_name_addresses_or_hosts() {
        let ip = |s: &str| s.parse::<std::net::IpAddr>().expect("ip");
        let parsed = parse_per_ip_overrides("127.0.0.2:3, [::1]:0,localhost:7").expect("valid");
        assert_eq!(parsed[..2], [(ip("127.0.0.2"), 3), (ip("::1"), 0)]);
        assert!(parsed[2..].contains(&(ip("127.0.0.1"), 7)), "{parsed:?}");
        assert!(parse_per_ip_overrides("").expect("empty").is_empty());
        for bad in [
            "127.0.0.1",
            "127.0.0.1:x",
            "127.0.0.1:-1",
            "no-such-host.invalid:1",
        ] {
            let e = parse_per_ip_overrides(bad).expect_err(bad);
            assert!(
                e.0.starts_with("max.connections.per.ip.overrides: "),
                "{e:?}"
            );
        }
    }

    #[test]
    fn defaults_are_valid_and_kafkas() {
        for key in broker::startup_keys() {
            check(key.name, key.rule, key.default).expect(key.name);
        }
        let c = Config::from_map(&BTreeMap::new()).expect("defaults");
        assert_eq!(c.message_max_bytes, 1_048_588);
        assert_eq!(c.socket_request_max_bytes, 104_857_600);
        assert_eq!(c.client_listener().port, 9092);
        assert_eq!(c.log_dirs, PathBuf::from("./data"));
        assert_eq!(c.offsets_topic_num_partitions, 50);
        // Defaults of topic synonyms without one of their own: the topic config's.
        assert_eq!(
            (c.log_roll_ms, c.log_retention_ms),
            (604_800_000, 604_800_000)
        );
        assert_eq!(c.log_flush_interval_messages, i64::MAX);
    }

    #[test]
    fn properties_and_errors_name_the_key() {
        let text =
            "# comment\nnode.id = 3\nlisteners=PLAINTEXT://127.0.0.1:9999\n\nlog.dirs: /tmp/x\n";
        let map = parse_properties(text).expect("parse");
        let c = Config::from_map(&map).expect("valid");
        assert_eq!(c.node_id, 3);
        assert_eq!(c.client_listener().port, 9999);
        assert_eq!(c.advertised().host, "127.0.0.1");

        let mut bad = map.clone();
        bad.insert("no.such.key".into(), "1".into());
        let e = Config::from_map(&bad).expect_err("unknown key").to_string();
        assert!(e.contains("no.such.key"), "{e}");

        let mut bad = map;
        bad.insert("num.partitions".into(), "zero".into());
        let e = Config::from_map(&bad).expect_err("bad value").to_string();
        assert!(e.contains("num.partitions"), "{e}");
        assert!(parse_override("a").is_err());

        let kraft = parse_properties(
            "node.id=2\nprocess.roles=broker,controller\n\
             listeners=PLAINTEXT://127.0.0.2:9092,CONTROLLER://127.0.0.2:19093\n\
             controller.listener.names=CONTROLLER\n\
             listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT\n\
             controller.quorum.voters=1@127.0.0.1:19093,2@127.0.0.2:19093,3@127.0.0.3:19093\n",
        )
        .expect("parse");
        let c = Config::from_map(&kraft).expect("kraft config");
        assert_eq!(c.client_listener().port, 9092);
        assert_eq!(c.advertised().port, 9092);
        assert_eq!(c.controller_listener().map(|l| l.port), Some(19093));
        assert_eq!(c.quorum_voters.len(), 3);
        assert_eq!(c.quorum_voters[&2], "127.0.0.2:19093");
        assert_eq!(c.broker_session_timeout_ms, 9000);
        for (k, v) in [
            ("node.id", "4"),
            ("process.roles", "broker"),
            ("listener.security.protocol.map", "PLAINTEXT:SSL"),
            ("controller.quorum.voters", "1@nohost"),
        ] {
            let mut bad = kraft.clone();
            bad.insert(k.into(), v.into());
            let e = Config::from_map(&bad).expect_err(k).to_string();
            assert!(
                e.contains("controller.quorum.voters") || e.contains(k),
                "{e}"
            );
        }
        assert_eq!(
            parse_override("a=b=c").expect("ok"),
            ("a".into(), "b=c".into())
        );
    }

    /// Kafka 4.1's shipped `config/server.properties`, with its listeners on loopback.
    fn shipped() -> BTreeMap<String, String> {
        let text = include_str!("../tests/data/kafka-4.1-server.properties")
            .replace("://:", "://127.0.0.1:");
        parse_properties(&text).expect("parse")
    }

    #[test]
    fn kafkas_shipped_server_properties_is_accepted() {
        let c = Config::from_map(&shipped()).expect("Kafka's own file");
        assert_eq!(c.client_listener().port, 9092);
        assert_eq!(c.advertised().host, "localhost");
        assert!(c.quorum_voters.is_empty(), "a one-voter quorum");
        assert_eq!(c.log_retention_ms, 168 * 3_600_000);
        assert_eq!(c.num_recovery_threads_per_data_dir, 1);
        assert_eq!(c.offsets_topic_replication_factor, 1);
        assert_eq!(
            (c.socket_send_buffer_bytes, c.socket_receive_buffer_bytes),
            (102_400, 102_400)
        );
        let inert: Vec<&str> = c.inert_keys.iter().map(|(k, _)| k.as_str()).collect();
        for k in [
            "num.io.threads",
            "num.network.threads",
            "transaction.state.log.replication.factor",
            "transaction.state.log.min.isr",
            "share.coordinator.state.topic.replication.factor",
            "share.coordinator.state.topic.min.isr",
        ] {
            assert!(inert.contains(&k), "{k} not reported as inert: {inert:?}");
        }
        assert!(!inert.contains(&"log.retention.hours"), "honoured");
        assert_eq!(
            broker::inert("num.io.threads"),
            Inert::Threads,
            "reason named"
        );
    }

    #[test]
    fn unknown_keys_are_refused_with_a_suggestion() {
        for (typo, meant) in [
            ("log.retention.hour", "log.retention.hours"),
            ("num.io.thread", "num.io.threads"),
            ("listners", "listeners"),
            ("auto.create.topic.enable", "auto.create.topics.enable"),
            ("fjord.core", "fjord.cores"),
        ] {
            let mut m = shipped();
            m.insert(typo.into(), "1".into());
            let e = Config::from_map(&m).expect_err(typo).to_string();
            assert!(e.contains(&format!("did you mean {meant}?")), "{typo}: {e}");
        }
        let mut m = shipped();
        m.insert("completely.unrelated.thing".into(), "1".into());
        let e = Config::from_map(&m).expect_err("unknown").to_string();
        assert!(!e.contains("did you mean"), "{e}");
        // Kafka's keys are checked by Kafka's rules.
        for (k, v) in [
            ("num.io.threads", "0"),
            ("ssl.client.auth", "sometimes"),
            ("delete.topic.enable", "false"),
            ("log.roll.jitter.hours", "2"),
        ] {
            let mut m = shipped();
            m.insert(k.into(), v.into());
            let e = Config::from_map(&m).expect_err(k).to_string();
            assert!(e.contains(k), "{e}");
        }
    }

    #[test]
    fn retention_falls_back_to_minutes_then_hours() {
        let ms = |pairs: &[(&str, &str)]| {
            let m: BTreeMap<String, String> = pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect();
            let c = Config::from_map(&m).expect("valid");
            (c.log_retention_ms, c.log_roll_ms)
        };
        assert_eq!(ms(&[("log.retention.hours", "2")]).0, 7_200_000);
        assert_eq!(
            ms(&[("log.retention.hours", "2"), ("log.retention.minutes", "3")]).0,
            180_000
        );
        assert_eq!(
            ms(&[("log.retention.minutes", "3"), ("log.retention.ms", "5")]).0,
            5
        );
        assert_eq!(ms(&[("log.roll.hours", "1")]).1, 3_600_000);
        assert_eq!(ms(&[]), (604_800_000, 604_800_000));
    }

    #[test]
    fn listeners_quorum_bootstrap_and_directories() {
        let with = |k: &str, v: &str| {
            let mut m = shipped();
            m.insert(k.into(), v.into());
            Config::from_map(&m)
        };
        let e = with(
            "listeners",
            "SSL://127.0.0.1:9094,CONTROLLER://127.0.0.1:9093",
        )
        .expect_err("ssl")
        .to_string();
        assert!(e.contains("PLAINTEXT listeners only"), "{e}");
        for v in [
            "localhost:9093,localhost:9095",
            "localhost:9099",
            "otherhost:9093",
        ] {
            let e = with("controller.quorum.bootstrap.servers", v)
                .expect_err(v)
                .to_string();
            assert!(e.contains("controller.quorum.voters"), "{e}");
        }
        with("controller.quorum.bootstrap.servers", "127.0.0.1:9093").expect("own listener");
        let e = with("inter.broker.listener.name", "CONTROLLER")
            .expect_err("controller")
            .to_string();
        assert!(e.contains("inter.broker.listener.name"), "{e}");
        let e = with("broker.id", "2").expect_err("broker.id").to_string();
        assert!(e.contains("broker.id"), "{e}");
        with("broker.id", "1").expect("equal ids");
        let e = with("log.dirs", "/a,/b").expect_err("two dirs").to_string();
        assert!(e.contains("log.dirs"), "{e}");
        let mut m = shipped();
        m.remove("log.dirs");
        m.insert("log.dir".into(), "/tmp/one".into());
        assert_eq!(
            Config::from_map(&m).expect("log.dir").log_dirs,
            PathBuf::from("/tmp/one")
        );
        with("listener.name.controller.ssl.keystore.location", "/x").expect("listener override");
    }
}
