//! Fjord storage: Apache Kafka's on-disk log format, written through io_uring.
//!
//! Layout:
//! - `batch.rs`  — pure view of a magic-v2 record batch header and in-place patching
//!   (base offset, leader epoch, LogAppendTime + CRC-32C).
//! - `io.rs`     — `IoEngine`: one io_uring ring per shard thread (eventfd-woken), or a
//!   blocking std fallback when io_uring is unavailable; `io/faults.rs` — `Faults`,
//!   counters and deterministic injected failures, tears and delays.
//! - `log.rs`    — `Log`: one partition directory; flush, checkpoints.
//!   `log/append.rs` (a leader's append, assigning offsets, a follower's replicated
//!   one, keeping them, and rolling), `log/recover.rs` (recovery off the shard: `Recovered`, then `from_recovered`),
//!   `log/read.rs` (fetch reads and, in `read/lookup.rs`, timestamp lookups, both
//!   planned on the shard and read through the ring),
//!   `log/retention.rs` (retention, DeleteRecords), `log/truncate.rs` (a follower's
//!   truncation, crash-safe) and `log/compact.rs` extend it.
//! - `segment.rs` — one segment's files and sparse indexes in Kafka's exact format,
//!   batch-by-batch validation and index rebuilding.
//! - `commit.rs` — write completion order, `written_end_offset`, group-commit fdatasync.
//! - `testing.rs` — builds valid v2 batches for tests (here and in the server).
//!
//! The crate never sees Kafka message types: batches are bytes plus a `BatchHeader`.
//! Every stateful type is owned by exactly one shard thread (`!Send`), except
//! `Recovered` and `CleanPlan`, which exist to cross to a blocking thread and back.

pub mod batch;
mod commit;
pub mod io;
pub mod log;
mod segment;
pub mod testing;

pub use batch::{BatchError, BatchHeader};
pub use io::Faults;
pub use io::IoEngine;
pub use log::compact::{CleanOutcome, CleanPlan, CompactionConfig, RecordCodec, RecordInfo};
pub use log::{
    replace_file, AppendInfo, Log, LogConfig, ReadFuture, ReadResult, Recovered, StorageError,
};
