//! `fjord`: start a broker.
//!
//! `fjord [--config server.properties] [--override key=value]...`
//! With no arguments: a single node on localhost:9092 with data in ./data.
//! `fjord plan --config server.properties --brokers 1,2,3,4`: the replica moves a
//! change of the broker set implies, from this node's committed metadata.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use clap::Parser;
use fjord::config::{self, Config};
use fjord::metadata::{self, BrokerInfo, Command};
use fjord::{net, shard};

/// mimalloc keeps freed pages for reuse: large fetch and produce buffers would
/// otherwise be fresh mappings each time, and first-touching fresh memory runs at a
/// tenth of memcpy's speed on this kind of machine.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
#[command(
    name = "fjord",
    version,
    about = "A broker that speaks Apache Kafka's protocol"
)]
struct Cli {
    /// A Kafka-style properties file.
    #[arg(long, global = true)]
    config: Option<std::path::PathBuf>,
    /// Overrides one key: `--override key=value` (repeatable).
    #[arg(long = "override", value_name = "KEY=VALUE", global = true)]
    overrides: Vec<String>,
    #[command(subcommand)]
    command: Option<Sub>,
}

#[derive(clap::Subcommand)]
enum Sub {
    /// Shows the replica moves that changing the broker set implies: the placement
    /// ring over the new brokers against every partition's current replicas, read
    /// from this node's committed metadata in log.dirs. Nothing is moved here; with
    /// `fjord.auto.rebalance.enable` the controller executes the registered brokers' plan.
    Plan {
        /// The broker ids after the change, e.g. `1,2,3,4`.
        #[arg(long, value_delimiter = ',', required = true)]
        brokers: Vec<i32>,
    },
}

/// `fjord plan`: prints the membership-change plan.
fn plan(cli: &Cli, brokers: &[i32]) -> anyhow::Result<()> {
    use fjord::placement::{plan, Ring};
    let config = load_config(cli)?;
    let dir = config.log_dirs.join("__cluster_metadata");
    let image = metadata::raft::read_image(&dir)
        .with_context(|| format!("reading the metadata in {}", dir.display()))?;
    let total = image
        .topics
        .values()
        .flat_map(|t| &t.partitions)
        .map(|p| p.replicas.len())
        .sum();
    let moves = metadata::rebalance::plan_for(&image, brokers);
    println!(
        "brokers now {:?} (live), after {:?}; metadata at index {}",
        image.placeable_brokers(),
        Ring::with_brokers(brokers).brokers(),
        image.applied_index
    );
    print!("{}", plan::render(&moves, total));
    Ok(())
}

fn load_config(cli: &Cli) -> anyhow::Result<Config> {
    let mut values = BTreeMap::new();
    if let Some(path) = &cli.config {
        let text =
            std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
        values = config::parse_properties(&text)?;
    }
    for o in &cli.overrides {
        let (k, v) = config::parse_override(o)?;
        values.insert(k, v);
    }
    Ok(Config::from_map(&values)?)
}

/// Holds an exclusive lock on the data directory for the life of the process (the
/// kernel drops it if the process dies, so `kill -9` leaves no stale lock).
fn lock_data_dir(dir: &std::path::Path) -> anyhow::Result<std::fs::File> {
    use std::os::fd::AsRawFd;
    std::fs::create_dir_all(dir).with_context(|| format!("creating log.dirs {}", dir.display()))?;
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(dir.join(".lock"))?;
    // SAFETY: flock on a file descriptor we own; no memory is shared.
    let rc = unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) };
    if rc != 0 {
        anyhow::bail!("log.dirs {} is in use by another process", dir.display());
    }
    Ok(file)
}

fn main() {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                // openraft reports every election and vote at info.
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info,openraft=warn")),
        )
        .with_writer(std::io::stderr)
        .init();
    let cli = Cli::parse();
    let result = match &cli.command {
        Some(Sub::Plan { brokers }) => plan(&cli, brokers),
        None => run(cli),
    };
    if let Err(e) = result {
        eprintln!("fjord: {e:#}");
        std::process::exit(1);
    }
}

fn run(cli: Cli) -> anyhow::Result<()> {
    let config = Arc::new(load_config(&cli)?);
    let _lock = lock_data_dir(&config.log_dirs)?;
    if let Some(addr) = &config.metrics_listener {
        fjord::telemetry::start(addr).context("fjord.metrics.listener")?;
    }
    let advertised = config.advertised();
    let me = BrokerInfo {
        id: config.node_id,
        host: advertised.host.clone(),
        port: advertised.port,
        rack: None,
    };
    let quorum = metadata::Quorum {
        node_id: config.node_id as u64,
        voters: config.quorum_voters.clone(),
        listen: config.controller_listener().map(|l| {
            format!(
                "{}:{}",
                if l.host.is_empty() {
                    "0.0.0.0"
                } else {
                    &l.host
                },
                l.port
            )
        }),
        broker: me.clone(),
        session_timeout: Duration::from_millis(config.broker_session_timeout_ms as u64),
        heartbeat_interval: Duration::from_millis(config.broker_heartbeat_interval_ms as u64),
        stopping: Default::default(),
        restarts_unclean: !config.replication_durable_high_watermark,
        leader_rebalance: config.auto_leader_rebalance_enable.then(|| {
            (
                Duration::from_secs(config.leader_imbalance_check_interval_seconds.max(1) as u64),
                config.leader_imbalance_per_broker_percentage.clamp(0, 100) as u32,
            )
        }),
        ring_rebalance: config.auto_rebalance_enable.then(|| {
            (
                Duration::from_millis(config.auto_rebalance_check_interval_ms.max(1) as u64),
                config.auto_rebalance_max_partitions.max(1) as usize,
            )
        }),
    };
    let lone = quorum.voters.len() <= 1;
    // Whether this node starts with a new metadata directory (Kafka's "format"): read
    // before openraft creates it. Deciding from the image instead raced with the
    // controller's heartbeat loop registering this broker.
    let metadata_dir = config.log_dirs.join("__cluster_metadata");
    let bootstrap = !metadata_dir.exists();
    let metadata = metadata::start(&metadata_dir, quorum)?;

    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    // A lone node registers before serving. In a quorum the controller's heartbeat
    // loop registers this broker as soon as a leader is elected, so nodes can start
    // in any order.
    let current = metadata.current();
    if lone && (current.brokers.get(&me.id) != Some(&me) || !current.is_live(me.id)) {
        runtime
            .block_on(metadata.propose(Command::RegisterBroker(me)))
            .map_err(|e| anyhow::anyhow!("registering this broker: {e}"))?;
    }
    if bootstrap {
        // Like a freshly formatted Kafka 4.1 cluster (eligible leader replicas on),
        // the cluster-wide default of min.insync.replicas is recorded at bootstrap, so
        // DescribeConfigs reports the same source (DYNAMIC_DEFAULT_BROKER_CONFIG).
        // The controller reads the cluster-wide defaults of the partition rules from
        // the image (eligible leaders, unclean elections): this node's static values.
        let value = config
            .properties
            .get("min.insync.replicas")
            .cloned()
            .unwrap_or_else(|| "1".to_string());
        let mut set: std::collections::BTreeMap<String, String> =
            [("min.insync.replicas".to_string(), value)].into();
        if let Some(v) = config.properties.get("unclean.leader.election.enable") {
            set.insert("unclean.leader.election.enable".to_string(), v.clone());
        }
        let cmd = Command::AlterConfigs {
            resource: fjord::metadata::ConfigResource::Broker(String::new()),
            set,
            delete: Vec::new(),
            replace_all: false,
        };
        if lone {
            runtime
                .block_on(metadata.propose(cmd))
                .map_err(|e| anyhow::anyhow!("recording the bootstrap configs: {e}"))?;
        } else {
            // In a quorum, written once a leader is elected (runs while main waits).
            let m = metadata.clone();
            runtime.spawn(async move {
                if let Err(e) = m.propose(cmd).await {
                    tracing::warn!(error = %e, "recording the bootstrap configs");
                }
            });
        }
    }

    fjord::partition::remove_leftover_deletions(&config.log_dirs);
    let addr = net::listener::client_addr(&config)?;
    net::listener::ensure_port_free(addr).with_context(|| format!("binding {addr}"))?;
    let (shutdown_tx, shutdown_rx) = tokio::sync::watch::channel(false);
    let connections = net::listener::Connections::new(&config);
    let serve: shard::Serve = std::sync::Arc::new(move |shard, listener| {
        Box::pin(net::listener::accept_loop(
            shard,
            listener,
            connections.clone(),
        ))
    });
    let replicate: shard::Replicate =
        std::sync::Arc::new(|shard| Box::pin(net::replica_fetcher::run(shard)));
    let mut starts = Vec::with_capacity(config.cores);
    for _ in 0..config.cores {
        let listener = net::listener::bind_reuseport(
            addr,
            config.socket_send_buffer_bytes,
            config.socket_receive_buffer_bytes,
        )
        .with_context(|| format!("binding {addr}"))?;
        starts.push(shard::ShardStart {
            config: config.clone(),
            metadata: metadata.clone(),
            listener,
            serve: serve.clone(),
            replicate: replicate.clone(),
            shutdown: shutdown_rx.clone(),
        });
    }
    let shards = shard::start(starts)?;
    log_inert_keys(&config.inert_keys);
    tracing::info!(%addr, shards = config.cores, node_id = config.node_id, log_dirs = %config.log_dirs.display(), "fjord started");

    runtime.block_on(async {
        use tokio::signal::unix::{signal, SignalKind};
        let mut term = signal(SignalKind::terminate())?;
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = term.recv() => {}
        }
        anyhow::Ok(())
    })?;
    tracing::info!("shutting down");
    runtime.block_on(metadata.shut_down(Duration::from_secs(5)));
    let _ = shutdown_tx.send(true);
    for s in shards {
        let _ = s.join();
    }
    tracing::info!("stopped");
    Ok(())
}

/// One start-up line naming the Kafka keys given that have no effect in Fjord, grouped
/// by the reason.
fn log_inert_keys(keys: &[(String, fjord::configs::broker::Inert)]) {
    if keys.is_empty() {
        return;
    }
    let mut groups: Vec<(fjord::configs::broker::Inert, Vec<&str>)> = Vec::new();
    for (key, why) in keys {
        match groups.iter_mut().find(|(w, _)| w == why) {
            Some((_, names)) => names.push(key),
            None => groups.push((*why, vec![key])),
        }
    }
    let text: Vec<String> = groups
        .iter()
        .map(|(why, names)| format!("{} ({})", names.join(", "), why.reason()))
        .collect();
    tracing::info!(
        "Kafka settings accepted without effect in Fjord: {}",
        text.join("; ")
    );
}
