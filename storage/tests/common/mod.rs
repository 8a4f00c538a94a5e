//! Shared helpers for the storage integration tests (included with `mod common;`).
#![allow(dead_code)]

use std::future::Future;
use std::path::PathBuf;
use std::rc::Rc;
use std::sync::atomic::{AtomicUsize, Ordering};

use bytes::BytesMut;
use fjord_storage::testing::build_batch;
use fjord_storage::{IoEngine, LogConfig};

/// Runs `f` on a current-thread runtime inside a LocalSet, like a shard.
pub fn run<F: Future<Output = ()>>(f: impl FnOnce() -> F) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let local = tokio::task::LocalSet::new();
    local.block_on(&rt, f());
}

/// Both engines: io_uring (if the kernel allows it) and the std fallback.
pub type MakeEngine = fn() -> Rc<IoEngine>;

pub fn engines() -> Vec<(&'static str, MakeEngine)> {
    vec![
        ("uring", || IoEngine::new(64).expect("engine")),
        ("fallback", IoEngine::new_fallback),
    ]
}

static COUNTER: AtomicUsize = AtomicUsize::new(0);

/// A fresh partition directory, removed when dropped.
pub struct TempDir(pub PathBuf);

impl TempDir {
    pub fn new(name: &str) -> TempDir {
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        let p =
            std::env::temp_dir().join(format!("fjord-storage-{}-{name}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&p);
        TempDir(p.join("topic-0"))
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        if let Some(parent) = self.0.parent() {
            let _ = std::fs::remove_dir_all(parent);
        }
    }
}

pub fn small_config() -> LogConfig {
    LogConfig {
        segment_bytes: 2_000,
        index_interval_bytes: 150,
        tail_cache_bytes: 0,
        retention_ms: -1,
        ..LogConfig::default()
    }
}

/// Batch `i` of a test stream: 1 + i % 3 records, timestamps from 1_000 + 10 * i.
pub fn batch(i: usize) -> BytesMut {
    let value = format!("value-{i}-{}", "x".repeat(i % 50));
    let values: Vec<&[u8]> = (0..1 + i % 3).map(|_| value.as_bytes()).collect();
    build_batch(1_000 + 10 * i as i64, &values)
}
