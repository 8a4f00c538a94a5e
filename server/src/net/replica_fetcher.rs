//! The follower fetchers of one shard: one task per leader broker that partitions of
//! this shard follow, each fetching all of them in one Fetch request over one
//! connection (Kafka's `ReplicaFetcherThread`, per shard instead of per pool). The
//! replica manager says what to fetch and applies the answers; this module only
//! carries the bytes.
//!
//! Runs on the shard's thread. Every wait is bounded: a connection or an answer that
//! takes longer than `replica.fetch.wait.max.ms` plus [`ANSWER_SLACK`] is dropped
//! and the fetcher starts again after `replica.fetch.backoff.ms`.

use std::collections::HashMap;
use std::io;
use std::rc::Rc;
use std::time::Duration;

use bytes::BytesMut;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::shard::Shard;
use crate::wire::replica_fetch::{decode_response, encode_request, FetchParams};

/// How long past the fetch's own wait an answer may take.
const ANSWER_SLACK: Duration = Duration::from_secs(10);
/// How long connecting to a leader may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// How often the set of leaders is looked at even without a role change.
const RESCAN: Duration = Duration::from_secs(1);
/// How long a fetcher whose partitions are all throttled waits before it looks again.
const THROTTLED_WAIT: Duration = Duration::from_millis(100);

/// Keeps one fetcher running for each leader this shard's partitions follow, until
/// the shard stops.
pub async fn run(shard: Rc<Shard>) {
    let roles = shard.partitions.role_changes();
    let mut running: HashMap<i32, tokio::task::JoinHandle<()>> = HashMap::new();
    loop {
        let changed = roles.notified();
        tokio::pin!(changed);
        changed.as_mut().enable();
        let leaders = shard.replicas.leaders();
        running.retain(|leader, task| {
            let keep = leaders.contains(leader) && !task.is_finished();
            if !keep {
                task.abort();
            }
            keep
        });
        for leader in leaders {
            running
                .entry(leader)
                .or_insert_with(|| tokio::task::spawn_local(fetch_from(shard.clone(), leader)));
        }
        tokio::select! {
            _ = changed => {}
            _ = tokio::time::sleep(RESCAN) => {}
        }
    }
}

/// Fetches from `leader` for as long as partitions here follow it, reconnecting
/// after errors.
async fn fetch_from(shard: Rc<Shard>, leader: i32) {
    let backoff = Duration::from_millis(shard.config.replica_fetch_backoff_ms.max(0) as u64);
    let mut correlation = 0i32;
    loop {
        let addr = shard
            .cluster
            .image()
            .brokers
            .get(&leader)
            .map(|b| format!("{}:{}", b.host, b.port));
        let result = match addr {
            None => Err(io::Error::other(format!("broker {leader} has no address"))),
            Some(addr) => {
                match tokio::time::timeout(CONNECT_TIMEOUT, TcpStream::connect(&addr)).await {
                    Ok(Ok(stream)) => {
                        let _ = stream.set_nodelay(true);
                        session(&shard, leader, stream, &mut correlation).await
                    }
                    Ok(Err(e)) => Err(e),
                    Err(_) => Err(io::Error::new(
                        io::ErrorKind::TimedOut,
                        format!("connecting to {addr}"),
                    )),
                }
            }
        };
        match result {
            Ok(()) => return,
            Err(e) => {
                tracing::debug!(leader, error = %e, "replica fetcher: starting again");
                tokio::time::sleep(backoff).await;
            }
        }
    }
}

/// Fetches over one connection until nothing here follows `leader` (Ok) or the
/// connection fails.
async fn session(
    shard: &Rc<Shard>,
    leader: i32,
    mut stream: TcpStream,
    correlation: &mut i32,
) -> io::Result<()> {
    let c = &shard.config;
    let mut params = FetchParams {
        replica_id: c.node_id,
        broker_epoch: -1,
        max_wait_ms: c.replica_fetch_wait_max_ms.clamp(0, i32::MAX as i64) as i32,
        min_bytes: 1,
        max_bytes: c.replica_fetch_response_max_bytes.clamp(0, i32::MAX as i64) as i32,
    };
    // One batch may exceed the byte budget (at most a message's size).
    let answer_max = (params.max_bytes as usize)
        .saturating_add(c.message_max_bytes.max(0) as usize)
        .saturating_add(1 << 20);
    let answer_wait = Duration::from_millis(params.max_wait_ms as u64) + ANSWER_SLACK;
    let backoff = Duration::from_millis(c.replica_fetch_backoff_ms.max(0) as u64);
    let client_id = format!("fjord-replica-{}", c.node_id);
    loop {
        let plan = shard.replicas.plan(leader);
        if plan.is_empty() {
            if !shard.replicas.follows(leader) {
                return Ok(());
            }
            // Every partition here that follows `leader` is throttled for now.
            tokio::time::sleep(THROTTLED_WAIT).await;
            continue;
        }
        // This broker's current registration, as this node's image has it: a leader
        // that knows a newer one refuses the fetch until the image here catches up.
        params.broker_epoch = shard
            .cluster
            .image()
            .broker_epochs
            .get(&c.node_id)
            .copied()
            .unwrap_or(-1);
        *correlation = correlation.wrapping_add(1);
        let asked: Vec<_> = plan.iter().map(|(_, f)| f.clone()).collect();
        let frame =
            encode_request(*correlation, &client_id, &params, &asked).map_err(io::Error::other)?;
        stream.write_all(&frame).await?;
        let body =
            match tokio::time::timeout(answer_wait, read_frame(&mut stream, answer_max)).await {
                Ok(r) => r?,
                Err(_) => return Err(io::Error::new(io::ErrorKind::TimedOut, "no fetch answer")),
            };
        let (got, answers) = decode_response(body.freeze())
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e.to_string()))?;
        if got != *correlation {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                "answer to another fetch",
            ));
        }
        let applied = shard.replicas.apply(&plan, answers).await;
        if applied.refused > 0 && applied.progressed == 0 {
            tokio::time::sleep(backoff).await;
        }
    }
}

/// Reads one size-prefixed frame of at most `max` bytes.
async fn read_frame(stream: &mut TcpStream, max: usize) -> io::Result<BytesMut> {
    let size = stream.read_i32().await?;
    if size < 0 || size as usize > max {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("answer of {size} bytes"),
        ));
    }
    let mut buf = BytesMut::zeroed(size as usize);
    stream.read_exact(&mut buf).await?;
    Ok(buf)
}
