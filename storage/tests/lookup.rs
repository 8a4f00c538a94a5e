//! Timestamp lookups of `Log` (`batch_for_timestamp`, `batch_with_max_timestamp`) over
//! both I/O engines, against a brute-force walk of everything the log returns.

mod common;

use std::rc::Rc;

use bytes::Bytes;
use common::{engines, run, small_config, MakeEngine, TempDir};
use fjord_storage::batch::{split_batches, BatchHeader};
use fjord_storage::testing::build_batch_with;
use fjord_storage::{IoEngine, Log, LogConfig};

/// Max timestamp of test batch `i`: not monotone, with repeats.
fn max_ts(i: usize) -> i64 {
    1_000 + ((i * 37) % 101) as i64 * 10
}

/// Appends batches `range` (1 + i % 3 records each), awaiting each write so the tail
/// cache evicts as it goes.
async fn fill(log: &mut Log, range: std::ops::Range<usize>) {
    for i in range {
        append(log, max_ts(i), 1 + i % 3).await;
    }
}

async fn append(log: &mut Log, max_timestamp: i64, records: usize) {
    let value = format!("value-{max_timestamp}");
    let values: Vec<&[u8]> = (0..records).map(|_| value.as_bytes()).collect();
    let b = build_batch_with(max_timestamp - 5, max_timestamp, &values);
    let (_, fut) = log.append_bytes(b, 1, None, false).expect("append");
    fut.await.expect("write");
}

/// Every batch from the log start, as stored.
async fn batches(log: &Log) -> Vec<(BatchHeader, Bytes)> {
    let mut out = Vec::new();
    let mut offset = log.log_start_offset();
    while offset < log.log_end_offset() {
        let r = log
            .read(offset, i64::MAX, 1 << 20, true)
            .await
            .expect("read");
        for range in split_batches(&r.records).expect("whole batches") {
            let b = r.records.slice(range);
            let h = BatchHeader::parse(&b).expect("header");
            offset = h.next_offset();
            out.push((h, b));
        }
    }
    out
}

/// Checks both lookups against `batches` for every timestamp around the test ones.
async fn check_lookups(log: &Log) {
    let all = batches(log).await;
    let max = all.iter().map(|(h, _)| h.max_timestamp).max();
    let expected_max = max.and_then(|m| all.iter().find(|(h, _)| h.max_timestamp == m));
    let got = log.batch_with_max_timestamp().await.expect("max lookup");
    assert_eq!(got, expected_max.map(|(_, b)| b.clone()), "max timestamp");
    for ts in (990..=2_020).step_by(5).chain([
        i64::MIN,
        -1,
        0,
        4_999,
        5_000,
        7_000,
        7_001,
        9_000,
        i64::MAX,
    ]) {
        let expected = all.iter().find(|(h, _)| h.max_timestamp >= ts);
        let got = log.batch_for_timestamp(ts).await.expect("lookup");
        assert_eq!(got, expected.map(|(_, b)| b.clone()), "timestamp {ts}");
    }
}

fn open(dir: &TempDir, config: LogConfig, engine: MakeEngine) -> (Log, Rc<IoEngine>) {
    let io = engine();
    let (log, _) = Log::open(dir.0.clone(), config, io.clone()).expect("open");
    (log, io)
}

#[test]
fn lookups_on_disk_read_through_the_engine() {
    for (name, engine) in engines() {
        run(|| async {
            let dir = TempDir::new(&format!("lookup-disk-{name}"));
            let (mut log, io) = open(&dir, small_config(), engine);
            assert!(log.batch_with_max_timestamp().is_ready(), "empty log");
            assert_eq!(log.batch_with_max_timestamp().await.expect("empty"), None);
            assert_eq!(log.batch_for_timestamp(0).await.expect("empty"), None);
            fill(&mut log, 0..80).await;
            assert!(log.segment_count() > 3, "{name}: several segments");
            check_lookups(&log).await;

            let reads = io.faults().reads();
            let lookup = log.batch_for_timestamp(1_500);
            assert!(!lookup.is_ready(), "{name}: disk lookups wait for the ring");
            assert!(lookup.await.expect("lookup").is_some());
            assert!(
                io.faults().reads() > reads,
                "{name}: read through the engine"
            );

            io.faults().fail_read(1, libc::EIO);
            let failed = log.batch_with_max_timestamp().await;
            assert!(
                matches!(failed, Err(fjord_storage::StorageError::Io(_))),
                "{name}: an engine read failure fails the lookup"
            );
            io.faults().clear();
            check_lookups(&log).await;
        });
    }
}

#[test]
fn lookups_in_the_tail_cache_are_ready_without_reads() {
    for (name, engine) in engines() {
        run(|| async {
            let dir = TempDir::new(&format!("lookup-cache-{name}"));
            let config = LogConfig {
                tail_cache_bytes: 1 << 20,
                ..small_config()
            };
            let (mut log, io) = open(&dir, config, engine);
            fill(&mut log, 0..80).await;
            let reads = io.faults().reads();
            let max = log.batch_with_max_timestamp();
            let by_time = log.batch_for_timestamp(1_500);
            assert!(max.is_ready() && by_time.is_ready(), "{name}: all cached");
            assert!(max.await.expect("max").is_some());
            assert!(by_time.await.expect("lookup").is_some());
            assert_eq!(io.faults().reads(), reads, "{name}: no disk reads");
            check_lookups(&log).await;
        });
    }
}

#[test]
fn lookups_walk_from_disk_into_the_tail_cache() {
    for (name, engine) in engines() {
        run(|| async {
            let dir = TempDir::new(&format!("lookup-mixed-{name}"));
            let config = LogConfig {
                tail_cache_bytes: 700,
                ..small_config()
            };
            let (mut log, _) = open(&dir, config, engine);
            for n in [1usize, 7, 20, 33, 60] {
                let end = log.log_end_offset();
                let from = batches(&log).await.len();
                fill(&mut log, from..n).await;
                assert!(log.log_end_offset() > end);
                check_lookups(&log).await;
            }
            // A new largest timestamp in the cache, then a duplicate of it.
            append(&mut log, 5_000, 2).await;
            append(&mut log, 5_000, 1).await;
            let max = log.batch_with_max_timestamp().await.expect("max");
            let h = BatchHeader::parse(&max.expect("some")).expect("header");
            assert_eq!((h.max_timestamp, h.last_offset_delta), (5_000, 1), "{name}");
            check_lookups(&log).await;
        });
    }
}

#[test]
fn max_timestamp_below_the_log_start_falls_back_to_a_walk() {
    for (name, engine) in engines() {
        for tail_cache_bytes in [0, 1 << 20] {
            run(|| async {
                let dir = TempDir::new(&format!("lookup-lso-{name}-{tail_cache_bytes}"));
                let config = LogConfig {
                    segment_bytes: 1 << 20,
                    tail_cache_bytes,
                    ..small_config()
                };
                let (mut log, _) = open(&dir, config, engine);
                append(&mut log, 9_000, 1).await;
                fill(&mut log, 0..10).await;
                append(&mut log, 7_000, 2).await;
                fill(&mut log, 10..20).await;
                append(&mut log, 7_000, 1).await;
                fill(&mut log, 20..30).await;
                assert_eq!(log.segment_count(), 1);
                // Offset 0 held the segment's recorded max.
                log.advance_log_start_offset(1).expect("delete records");
                let max = log.batch_with_max_timestamp().await.expect("max");
                let h = BatchHeader::parse(&max.expect("some")).expect("header");
                assert_eq!(
                    (h.max_timestamp, h.last_offset_delta),
                    (7_000, 1),
                    "{name}/{tail_cache_bytes}: the first batch holding the remaining max"
                );
                check_lookups(&log).await;
            });
        }
    }
}

#[test]
fn a_lookup_answers_from_the_log_as_planned() {
    for (name, engine) in engines() {
        run(|| async {
            let dir = TempDir::new(&format!("lookup-planned-{name}"));
            let (mut log, _) = open(&dir, small_config(), engine);
            fill(&mut log, 0..60).await;
            let before = batches(&log).await;
            let max = log.batch_with_max_timestamp();
            let first = log.batch_for_timestamp(i64::MIN);
            // The futures borrow nothing: the log appends and deletes segments meanwhile.
            append(&mut log, 9_000, 1).await;
            let end = log.log_end_offset();
            log.advance_log_start_offset(end).expect("delete records");
            assert_eq!(log.segment_count(), 1, "{name}: segments deleted");
            let top = before.iter().map(|(h, _)| h.max_timestamp).max();
            let expected = before.iter().find(|(h, _)| Some(h.max_timestamp) == top);
            assert_eq!(max.await.expect("max"), expected.map(|(_, b)| b.clone()));
            assert_eq!(first.await.expect("first"), Some(before[0].1.clone()));
        });
    }
}
