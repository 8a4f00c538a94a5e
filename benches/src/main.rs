//! `fjord-bench`: a lean Kafka-protocol load generator, used to compare Fjord with
//! Apache Kafka on the same machine (see `benches/run.sh`).
//!
//! Layout:
//! - `main.rs`    command line, runtime, the `all` summary table
//! - `client.rs`  framed, pipelinable request/response over one TCP connection
//! - `cluster.rs` ApiVersions negotiation, CreateTopics, Metadata (leader lookup)
//! - `produce.rs` pre-encoded batches sent in pipelined Produce requests
//! - `fetch.rs`   start-to-end Fetch loops, records counted from batch headers
//! - `e2e.rs`     end-to-end latency: fixed-rate produce, long-poll fetch
//! - `probe.rs`   start-up probe: first acknowledged produce of a starting broker
//! - `scale.rs`   many partitions: creation time, Metadata latency
//! - `stats.rs`   error tallies, latency percentiles, printed reports
//!
//! Every command prints human-readable lines and `RESULT <phase> key=value ...` lines
//! for scripts. It exits non-zero when every request of a phase failed.

mod client;
mod cluster;
mod e2e;
mod fetch;
mod probe;
mod produce;
mod scale;
mod stats;

use std::time::Duration;

use anyhow::{ensure, Result};
use clap::{Args, Parser, Subcommand};

use crate::cluster::{NewTopic, TopicLayout, Versions};
use crate::e2e::E2eOptions;
use crate::fetch::FetchOptions;
use crate::produce::ProduceOptions;
use crate::stats::{mib_per_sec, per_sec};

#[derive(Parser)]
#[command(
    name = "fjord-bench",
    version,
    about = "Kafka-protocol produce/fetch load generator"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Create the topic and produce to it for the duration.
    Produce {
        #[command(flatten)]
        common: Common,
        #[command(flatten)]
        produce: ProduceArgs,
    },
    /// Fetch an existing topic start to end, repeatedly, for the duration.
    Fetch {
        #[command(flatten)]
        common: Common,
        #[command(flatten)]
        fetch: FetchArgs,
    },
    /// Produce, then fetch the same topic; print one summary table.
    All {
        #[command(flatten)]
        common: Common,
        #[command(flatten)]
        produce: ProduceArgs,
        #[command(flatten)]
        fetch: FetchArgs,
    },
    /// End-to-end latency: produce at `--rate-mib` to a fresh topic while fetching it.
    E2e {
        #[command(flatten)]
        common: Common,
        #[command(flatten)]
        produce: ProduceArgs,
    },
    /// Wait for a starting broker, then produce one batch until it is acknowledged.
    Probe {
        #[arg(long, default_value = "127.0.0.1:9092")]
        bootstrap: String,
        #[arg(long, default_value = "fjord-bench-probe")]
        topic: String,
        #[arg(long, default_value_t = 120)]
        timeout_secs: u64,
    },
    /// Create `--partitions` partitions over `--topics` topics and time Metadata for them.
    Partitions {
        #[command(flatten)]
        common: Common,
        /// Spread the partitions over this many topics (`<topic>-0`, `<topic>-1`, ...;
        /// one topic is `<topic>` itself).
        #[arg(long, default_value_t = 1)]
        topics: i32,
        /// Metadata requests to time, one after another.
        #[arg(long, default_value_t = 200)]
        metadata_requests: usize,
        /// Longest wait for every partition to have a leader.
        #[arg(long, default_value_t = 300)]
        timeout_secs: u64,
    },
}

/// Options every command takes.
#[derive(Args)]
struct Common {
    /// `host:port` of any broker.
    #[arg(long, default_value = "127.0.0.1:9092")]
    bootstrap: String,
    #[arg(long, default_value = "fjord-bench")]
    topic: String,
    /// Partitions to create (produce) or to read, counting from 0 (fetch).
    #[arg(long, default_value_t = 1)]
    partitions: i32,
    /// Length of each phase.
    #[arg(long, default_value_t = 10)]
    duration_secs: u64,
    /// Unmeasured produce time before measuring (lets a JVM broker warm up).
    #[arg(long, default_value_t = 0)]
    warmup_secs: u64,
    /// Tokio worker threads (1 = current-thread runtime).
    #[arg(long, default_value_t = 1)]
    threads: usize,
    /// Replication factor of the topics this command creates.
    #[arg(long, default_value_t = 1)]
    replication_factor: i16,
    /// A config of the topics this command creates, `key=value` (repeatable),
    /// e.g. `--topic-config min.insync.replicas=2`.
    #[arg(long, value_parser = parse_config)]
    topic_config: Vec<(String, String)>,
}

impl Common {
    fn new_topic(&self) -> NewTopic {
        NewTopic {
            replication_factor: self.replication_factor,
            configs: self.topic_config.clone(),
        }
    }
}

fn parse_config(s: &str) -> Result<(String, String), String> {
    match s.split_once('=') {
        Some((k, v)) if !k.is_empty() => Ok((k.to_owned(), v.to_owned())),
        _ => Err(format!("expected key=value, got {s:?}")),
    }
}

#[derive(Args)]
struct ProduceArgs {
    /// Size of each record's value in bytes.
    #[arg(long, default_value_t = 1024)]
    record_bytes: usize,
    /// Records per partition batch.
    #[arg(long, conflicts_with = "batch_bytes")]
    batch_records: Option<usize>,
    /// Target batch size in bytes of record values (records = batch / record size).
    #[arg(long)]
    batch_bytes: Option<usize>,
    /// 1 or -1 (all).
    #[arg(long, default_value_t = 1, allow_hyphen_values = true)]
    acks: i16,
    #[arg(long, default_value_t = 1)]
    connections: usize,
    /// Produce requests in flight per connection.
    #[arg(long, default_value_t = 8)]
    inflight: usize,
    /// Send at this fixed rate of record-value MiB/s (latency is timed from each
    /// request's scheduled send time); default: as fast as the broker answers.
    #[arg(long)]
    rate_mib: Option<f64>,
    /// Stop after this many MiB of record values (or the duration, if sooner).
    #[arg(long)]
    total_mib: Option<f64>,
}

#[derive(Args)]
struct FetchArgs {
    /// Bytes per Fetch (request and partition limit).
    #[arg(long, default_value_t = 1024 * 1024)]
    max_bytes: i32,
    /// Read each partition start to end once instead of looping for the duration.
    #[arg(long)]
    once: bool,
    /// Read (and re-read) only the last N records of each partition.
    #[arg(long, conflicts_with = "once")]
    tail_records: Option<i64>,
}

impl FetchArgs {
    fn options(&self, common: &Common) -> FetchOptions {
        FetchOptions {
            duration: Duration::from_secs(common.duration_secs),
            max_bytes: self.max_bytes,
            once: self.once,
            tail_records: self.tail_records,
        }
    }
}

impl ProduceArgs {
    fn batch_records(&self) -> usize {
        match (self.batch_records, self.batch_bytes) {
            (Some(n), _) => n,
            (None, Some(bytes)) => (bytes / self.record_bytes.max(1)).max(1),
            (None, None) => 16,
        }
    }

    fn options(&self, common: &Common) -> ProduceOptions {
        let batch_records = self.batch_records();
        ProduceOptions {
            record_bytes: self.record_bytes,
            batch_records,
            acks: self.acks,
            duration: Duration::from_secs(common.duration_secs),
            warmup: Duration::from_secs(common.warmup_secs),
            connections: self.connections,
            inflight: self.inflight,
            rate_bytes_per_sec: self.rate_mib.map(|m| m * MIB),
            total_bytes: self.total_mib.map(|m| (m * MIB) as u64),
        }
    }
}

const MIB: f64 = 1024.0 * 1024.0;

fn main() -> Result<()> {
    let cli = Cli::parse();
    let threads = match &cli.command {
        Command::Produce { common, .. }
        | Command::Fetch { common, .. }
        | Command::All { common, .. }
        | Command::E2e { common, .. }
        | Command::Partitions { common, .. } => common.threads,
        Command::Probe { .. } => 1,
    };
    let runtime = if threads <= 1 {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?
    } else {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(threads)
            .enable_all()
            .build()?
    };
    runtime.block_on(run(cli.command))
}

async fn run(command: Command) -> Result<()> {
    match command {
        Command::Produce { common, produce } => {
            let (versions, layout) = prepare(&common, true).await?;
            let opts = produce.options(&common);
            produce::run(&layout, &common.topic, &versions, &opts)
                .await?
                .print();
        }
        Command::Fetch { common, fetch } => {
            let (versions, layout) = prepare(&common, false).await?;
            fetch::run(&layout, &common.topic, &versions, &fetch.options(&common))
                .await?
                .print();
        }
        Command::E2e { common, produce } => {
            let (versions, layout) = prepare(&common, true).await?;
            let Some(rate_mib) = produce.rate_mib else {
                anyhow::bail!("e2e needs --rate-mib");
            };
            let opts = E2eOptions {
                record_bytes: produce.record_bytes,
                batch_records: produce.batch_records(),
                acks: produce.acks,
                rate_bytes_per_sec: rate_mib * MIB,
                duration: Duration::from_secs(common.duration_secs),
                warmup: Duration::from_secs(common.warmup_secs),
            };
            e2e::run(&layout, &common.topic, &versions, &opts).await?;
        }
        Command::Probe {
            bootstrap,
            topic,
            timeout_secs,
        } => probe::run(&bootstrap, &topic, Duration::from_secs(timeout_secs)).await?,
        Command::Partitions {
            common,
            topics,
            metadata_requests,
            timeout_secs,
        } => {
            ensure!(common.partitions > 0, "--partitions must be > 0");
            let versions = cluster::negotiate(&common.bootstrap).await?;
            scale::run(
                &common.bootstrap,
                &versions,
                &common.topic,
                common.partitions,
                &common.new_topic(),
                topics,
                metadata_requests,
                Duration::from_secs(timeout_secs),
            )
            .await?;
        }
        Command::All {
            common,
            produce,
            fetch,
        } => {
            let duration = Duration::from_secs(common.duration_secs);
            let (versions, layout) = prepare(&common, true).await?;
            let popts = produce.options(&common);
            let p = produce::run(&layout, &common.topic, &versions, &popts).await?;
            p.print();
            let f = fetch::run(
                &layout,
                &common.topic,
                &versions,
                &FetchOptions {
                    duration,
                    ..fetch.options(&common)
                },
            )
            .await?;
            f.print();
            println!();
            println!(
                "{:<10} {:>14} {:>10} {:>10} {:>10} {:>10} {:>8}",
                "phase", "records/s", "MiB/s", "p50 us", "p99 us", "p99.9 us", "errors"
            );
            println!(
                "{:<10} {:>14.0} {:>10.1} {:>10} {:>10} {:>10} {:>8}",
                "produce",
                per_sec(p.records, p.elapsed),
                mib_per_sec(p.value_bytes, p.elapsed),
                p.p50_us,
                p.p99_us,
                p.p999_us,
                p.errors.total()
            );
            println!(
                "{:<10} {:>14.0} {:>10.1} {:>10} {:>10} {:>10} {:>8}",
                "fetch",
                per_sec(f.records, f.elapsed),
                mib_per_sec(f.batch_bytes, f.elapsed),
                "-",
                "-",
                "-",
                f.errors.total()
            );
        }
    }
    Ok(())
}

/// Negotiates versions, creates the topic when `create` is set, and finds its leader.
/// The returned layout holds partitions `0..common.partitions` only.
async fn prepare(common: &Common, create: bool) -> Result<(Versions, TopicLayout)> {
    ensure!(common.partitions > 0, "--partitions must be > 0");
    let versions = cluster::negotiate(&common.bootstrap).await?;
    eprintln!("negotiated versions: {versions:?}");
    // Without CreateTopics, producing relies on Metadata's auto-creation.
    let auto_create = create && versions.create_topics.is_none();
    if create {
        cluster::create_topic(
            &common.bootstrap,
            &versions,
            &common.topic,
            common.partitions,
            &common.new_topic(),
            Duration::from_secs(30),
        )
        .await?;
    }
    let mut layout = cluster::wait_for_topic(
        &common.bootstrap,
        &versions,
        &common.topic,
        common.partitions,
        auto_create,
        Duration::from_secs(30),
    )
    .await?;
    layout.retain(|p| p < common.partitions);
    Ok((versions, layout))
}
