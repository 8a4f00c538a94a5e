//! fjord-storage through its public API: appending 16 x 1 KiB batches (written, and
//! written + fdatasync'd as acks=all does), and reading one batch at a random offset
//! of a 100,000-batch log from disk (tail cache off), which is the offset-index lookup
//! plus one positioned read.
//!
//! The log lives under the system temp directory and is deleted afterwards. The I/O
//! engine is io_uring when the kernel allows it, else the blocking fallback; the
//! name of each benchmark says which.

use std::path::PathBuf;
use std::rc::Rc;
use std::time::Instant;

use bytes::BytesMut;
use criterion::{black_box, criterion_group, criterion_main, Criterion, Throughput};
use fjord_storage::{IoEngine, Log, LogConfig};
use tokio::task::LocalSet;

const LOOKUP_BATCHES: i64 = 100_000;

fn scratch_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("fjord-bench-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

fn engine() -> (Rc<IoEngine>, &'static str) {
    match IoEngine::new(256) {
        Ok(io) if io.is_uring() => (io, "io_uring"),
        _ => (IoEngine::new_fallback(), "fallback"),
    }
}

fn batch(value_bytes: usize, count: usize) -> BytesMut {
    let value = vec![7u8; value_bytes];
    let values: Vec<&[u8]> = (0..count).map(|_| value.as_slice()).collect();
    fjord_storage::testing::build_batch(1_700_000_000_000, &values)
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("tokio runtime")
}

fn append(c: &mut Criterion) {
    let rt = runtime();
    let local = LocalSet::new();
    let one = batch(1024, 16);
    let mut g = c.benchmark_group("log_append");
    g.throughput(Throughput::Bytes(one.len() as u64));
    for sync in [false, true] {
        let dir = scratch_dir(if sync { "append-sync" } else { "append" });
        let (mut log, kind) = local.block_on(&rt, async {
            let (io, kind) = engine();
            let (log, _) = Log::open(dir.clone(), LogConfig::default(), io).expect("open");
            (log, kind)
        });
        let name = format!(
            "16x1KiB_{}_{kind}",
            if sync { "fdatasync" } else { "write" }
        );
        g.bench_function(name, |b| {
            b.iter_custom(|iters| {
                local.block_on(&rt, async {
                    let start = Instant::now();
                    for _ in 0..iters {
                        let (info, done) = log
                            .append_bytes(one.clone(), 0, None, sync)
                            .expect("append");
                        done.await.expect("write completes");
                        black_box(info.last_offset);
                    }
                    start.elapsed()
                })
            })
        });
        drop(log);
        let _ = std::fs::remove_dir_all(dir);
    }
    g.finish();
}

fn lookup(c: &mut Criterion) {
    let rt = runtime();
    let local = LocalSet::new();
    let dir = scratch_dir("lookup");
    let config = LogConfig {
        tail_cache_bytes: 0,
        ..LogConfig::default()
    };
    let (log, kind) = local.block_on(&rt, async {
        let (io, kind) = engine();
        let (mut log, _) = Log::open(dir.clone(), config, io).expect("open");
        // 100 one-record batches per append, each append awaited.
        let one = batch(200, 1);
        let mut chunk = BytesMut::new();
        for _ in 0..100 {
            chunk.extend_from_slice(&one);
        }
        for _ in 0..LOOKUP_BATCHES / 100 {
            let (_, done) = log
                .append_bytes(chunk.clone(), 0, None, false)
                .expect("append");
            done.await.expect("write completes");
        }
        (log, kind)
    });
    let mut g = c.benchmark_group("log_read");
    g.bench_function(format!("random_offset_of_100k_batches_{kind}"), |b| {
        // A fixed LCG: the same offsets every run, spread over the whole log.
        let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
        b.iter(|| {
            x = x.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1);
            let offset = ((x >> 33) % LOOKUP_BATCHES as u64) as i64;
            let read = local
                .block_on(&rt, log.read(offset, i64::MAX, 1, true))
                .expect("read");
            black_box(read.records.len())
        })
    });
    g.finish();
    drop(log);
    let _ = std::fs::remove_dir_all(dir);
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(20);
    targets = append, lookup
}
criterion_main!(benches);
