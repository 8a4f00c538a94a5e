//! Integration tests of `Log` over both I/O engines.

mod common;

use std::cell::RefCell;
use std::os::unix::fs::FileExt;
use std::rc::Rc;

use bytes::{Bytes, BytesMut};
use common::{batch, engines, run, small_config, TempDir};
use fjord_storage::batch::{split_batches, BatchHeader};
use fjord_storage::testing::{build_batch, build_batch_with};
use fjord_storage::{Log, LogConfig, StorageError};

/// Appends `n` test batches, awaits them, returns the bytes as stored.
async fn fill(log: &mut Log, n: usize, sync: bool) -> Vec<Bytes> {
    let mut stored = Vec::new();
    let mut futs = Vec::new();
    for i in 0..n {
        let b = batch(i);
        let headers = [BatchHeader::parse(&b).expect("header")];
        let (info, fut) = log
            .append(b.clone(), &headers, 3, None, sync)
            .expect("append");
        let mut expected = b;
        fjord_storage::batch::set_base_offset(&mut expected, info.base_offset);
        fjord_storage::batch::set_partition_leader_epoch(&mut expected, 3);
        stored.push(expected.freeze());
        futs.push(fut);
    }
    for f in futs {
        f.await.expect("write");
    }
    stored
}

/// Reads everything from `from` by repeated fetches of `max_bytes`.
async fn read_all(log: &Log, from: i64, max_bytes: usize) -> Vec<u8> {
    let mut out = Vec::new();
    let mut offset = from;
    while offset < log.log_end_offset() {
        let r = log
            .read(offset, i64::MAX, max_bytes, true)
            .await
            .expect("read");
        assert!(!r.records.is_empty(), "progress at {offset}");
        for range in split_batches(&r.records).expect("whole batches") {
            let h = BatchHeader::parse(&r.records[range]).expect("header");
            assert!(h.last_offset() >= offset);
            offset = h.next_offset();
        }
        out.extend_from_slice(&r.records);
    }
    out
}

/// Headers of every batch from the one containing `from` (or the log start, if later).
async fn headers_from(log: &Log, from: i64) -> Vec<BatchHeader> {
    let bytes = read_all(log, from.max(log.log_start_offset()), 1 << 20).await;
    split_batches(&bytes)
        .expect("whole batches")
        .into_iter()
        .map(|range| BatchHeader::parse(&bytes[range]).expect("header"))
        .collect()
}

fn concat(parts: &[Bytes]) -> Vec<u8> {
    parts.iter().flat_map(|b| b.iter().copied()).collect()
}

/// Every `.index` entry points at a batch whose last offset is the entry's offset, and
/// `.timeindex` entries name batches carrying those timestamps (DumpLogSegments' checks).
fn check_index_files(dir: &std::path::Path) -> usize {
    let mut segments = 0;
    for e in std::fs::read_dir(dir).expect("dir") {
        let name = e.expect("entry").file_name().into_string().expect("utf8");
        let Some(stem) = name.strip_suffix(".log") else {
            continue;
        };
        segments += 1;
        let base: i64 = stem.parse().expect("base");
        let log = std::fs::read(dir.join(&name)).expect("log");
        let index = std::fs::read(dir.join(format!("{stem}.index"))).expect("index");
        let time = std::fs::read(dir.join(format!("{stem}.timeindex"))).expect("timeindex");
        assert_eq!(index.len() % 8, 0);
        assert_eq!(time.len() % 12, 0);
        for entry in index.chunks(8) {
            let rel = u32::from_be_bytes(entry[..4].try_into().expect("4"));
            let pos = u32::from_be_bytes(entry[4..].try_into().expect("4")) as usize;
            let h = BatchHeader::parse(&log[pos..]).expect("batch at indexed position");
            assert_eq!(
                h.last_offset(),
                base + i64::from(rel),
                "index entry keyed by last offset"
            );
        }
        let headers: Vec<BatchHeader> = split_batches(&log)
            .expect("log parses")
            .into_iter()
            .map(|r| BatchHeader::parse(&log[r]).expect("header"))
            .collect();
        for entry in time.chunks(12) {
            let ts = i64::from_be_bytes(entry[..8].try_into().expect("8"));
            let rel = u32::from_be_bytes(entry[8..].try_into().expect("4"));
            let h = headers
                .iter()
                .find(|h| h.last_offset() == base + i64::from(rel))
                .expect("batch");
            assert_eq!(h.max_timestamp, ts);
        }
    }
    segments
}

#[test]
fn append_and_read_back_across_rolls() {
    for (name, engine) in engines() {
        for cache in [0usize, 1 << 20] {
            run(|| async move {
                let dir = TempDir::new("roundtrip");
                let io = engine();
                let config = LogConfig {
                    tail_cache_bytes: cache,
                    ..small_config()
                };
                let (mut log, truncated) = Log::open(dir.0.clone(), config, io).expect("open");
                assert_eq!(truncated, 0);
                let stored = fill(&mut log, 120, false).await;
                assert_eq!(log.log_end_offset(), 240, "{name}");
                assert_eq!(log.written_end_offset(), 240);
                assert!(log.segment_count() > 5, "rolled: {}", log.segment_count());
                let expected = concat(&stored);
                assert_eq!(log.size_bytes() as usize, expected.len());
                for max_bytes in [1, 700, 1 << 20] {
                    assert_eq!(
                        read_all(&log, 0, max_bytes).await,
                        expected,
                        "{name} cache={cache} max={max_bytes}"
                    );
                }
                log.flush().await.expect("flush");
                assert_eq!(check_index_files(&dir.0), log.segment_count());
            });
        }
    }
}

#[test]
fn read_semantics() {
    run(|| async {
        let dir = TempDir::new("read");
        for cache in [0usize, 1 << 20] {
            let config = LogConfig {
                tail_cache_bytes: cache,
                ..small_config()
            };
            let _ = std::fs::remove_dir_all(&dir.0);
            let (mut log, _) = Log::open(
                dir.0.clone(),
                config,
                fjord_storage::IoEngine::new_fallback(),
            )
            .expect("open");
            let stored = fill(&mut log, 30, false).await;
            // Batch 2 holds offsets 3..=5 (batch i has 1 + i % 3 records).
            let r = log.read(4, i64::MAX, 1, true).await.expect("read");
            assert_eq!(
                r.records, stored[2],
                "inside a batch: that whole batch (min_one)"
            );
            assert!(
                log.read(4, i64::MAX, 1, false)
                    .await
                    .expect("read")
                    .records
                    .is_empty(),
                "too small without min_one"
            );
            let two = stored[2].len() + stored[3].len();
            let r = log.read(3, i64::MAX, two, false).await.expect("read");
            assert_eq!(r.records.len(), two, "exactly two batches fit");
            let r = log.read(3, i64::MAX, two - 1, false).await.expect("read");
            assert_eq!(r.records, stored[2]);
            // max_offset is exclusive on base offsets: batch 3 starts at 6.
            assert_eq!(
                log.read(3, 6, 1 << 20, false).await.expect("read").records,
                stored[2]
            );
            assert!(log
                .read(6, 6, 1 << 20, false)
                .await
                .expect("read")
                .records
                .is_empty());
            let leo = log.log_end_offset();
            assert!(log
                .read(leo, i64::MAX, 100, true)
                .await
                .expect("read")
                .records
                .is_empty());
            match log.read(leo + 1, i64::MAX, 100, true).await {
                Err(StorageError::OffsetOutOfRange {
                    log_start_offset: 0,
                    log_end_offset,
                }) => assert_eq!(log_end_offset, leo),
                other => panic!("expected OffsetOutOfRange, got {other:?}"),
            }
            log.advance_log_start_offset(10).expect("advance");
            assert!(matches!(
                log.read(9, i64::MAX, 100, true).await,
                Err(StorageError::OffsetOutOfRange {
                    log_start_offset: 10,
                    ..
                })
            ));
            let r = log.read(10, i64::MAX, 1, true).await.expect("read");
            assert!(BatchHeader::parse(&r.records).expect("h").last_offset() >= 10);
            assert_eq!(r.log_start_offset, 10);
        }
    });
}

#[test]
fn reopen_after_clean_close_keeps_offsets() {
    for (name, engine) in engines() {
        run(|| async move {
            let dir = TempDir::new("reopen");
            let (mut log, _) = Log::open(dir.0.clone(), small_config(), engine()).expect("open");
            let stored = fill(&mut log, 50, true).await;
            log.advance_log_start_offset(7).expect("advance");
            log.flush().await.expect("flush");
            let (leo, segments) = (log.log_end_offset(), log.segment_count());
            drop(log);
            let (mut log, truncated) =
                Log::open(dir.0.clone(), small_config(), engine()).expect("reopen");
            assert_eq!(truncated, 0, "{name}");
            assert_eq!(log.log_end_offset(), leo);
            assert_eq!(log.log_start_offset(), 7);
            assert_eq!(log.segment_count(), segments);
            // Offset 7 lies in batch 4 (offsets 7..=8).
            assert_eq!(read_all(&log, 7, 1 << 16).await, concat(&stored[4..]));
            let (info, fut) = log.append_bytes(batch(0), 4, None, true).expect("append");
            fut.await.expect("write");
            assert_eq!(info.base_offset, leo);
            assert_eq!(info.log_start_offset, 7);
        });
    }
}

fn active_log_file(dir: &std::path::Path) -> std::path::PathBuf {
    let mut logs: Vec<_> = std::fs::read_dir(dir)
        .expect("dir")
        .map(|e| e.expect("entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "log"))
        .collect();
    logs.sort();
    logs.pop().expect("a segment")
}

#[test]
fn recovery_truncates_torn_or_corrupt_tail() {
    for damage in ["torn", "flipped"] {
        run(|| async move {
            let dir = TempDir::new("recover");
            let config = LogConfig {
                segment_bytes: 1 << 20,
                ..small_config()
            };
            let (mut log, _) = Log::open(
                dir.0.clone(),
                config.clone(),
                fjord_storage::IoEngine::new(32).expect("io"),
            )
            .expect("open");
            let stored = fill(&mut log, 20, true).await;
            let last = BatchHeader::parse(&stored[19]).expect("h");
            let good_end = last.base_offset;
            drop(log);
            let path = active_log_file(&dir.0);
            let len = std::fs::metadata(&path).expect("meta").len();
            let file = std::fs::OpenOptions::new()
                .write(true)
                .open(&path)
                .expect("open log");
            match damage {
                "torn" => file.set_len(len - 5).expect("truncate"),
                _ => file.write_all_at(&[0xAB], len - 3).expect("flip"),
            }
            drop(file);
            let (mut log, truncated) = Log::open(
                dir.0.clone(),
                config,
                fjord_storage::IoEngine::new_fallback(),
            )
            .expect("reopen");
            let torn_len = stored[19].len() as u64;
            assert_eq!(
                truncated,
                if damage == "torn" {
                    torn_len - 5
                } else {
                    torn_len
                },
                "{damage}"
            );
            assert_eq!(log.log_end_offset(), good_end);
            assert_eq!(
                std::fs::metadata(&path).expect("meta").len(),
                len - torn_len
            );
            assert_eq!(read_all(&log, 0, 1 << 20).await, concat(&stored[..19]));
            let (info, fut) = log.append_bytes(batch(19), 3, None, true).expect("append");
            fut.await.expect("write");
            assert_eq!(info.base_offset, good_end);
            assert_eq!(read_all(&log, 0, 1 << 20).await, concat(&stored));
        });
    }
}

#[test]
fn missing_or_corrupt_indexes_are_rebuilt() {
    run(|| async {
        let dir = TempDir::new("index");
        let (mut log, _) = Log::open(
            dir.0.clone(),
            small_config(),
            fjord_storage::IoEngine::new_fallback(),
        )
        .expect("open");
        let stored = fill(&mut log, 80, false).await;
        log.flush().await.expect("flush");
        drop(log);
        let first = dir.0.join(format!("{:020}.index", 0));
        let time = dir.0.join(format!("{:020}.timeindex", 0));
        let (index_bytes, time_bytes) = (
            std::fs::read(&first).expect("index"),
            std::fs::read(&time).expect("time"),
        );
        assert!(
            !index_bytes.is_empty() && !time_bytes.is_empty(),
            "sparse entries exist"
        );
        std::fs::remove_file(&first).expect("rm");
        std::fs::write(&time, b"garbage").expect("corrupt");
        let (log, truncated) = Log::open(
            dir.0.clone(),
            small_config(),
            fjord_storage::IoEngine::new_fallback(),
        )
        .expect("reopen");
        assert_eq!(truncated, 0);
        assert_eq!(std::fs::read(&first).expect("index"), index_bytes);
        assert_eq!(std::fs::read(&time).expect("time"), time_bytes);
        assert_eq!(read_all(&log, 0, 1 << 20).await, concat(&stored));
        check_index_files(&dir.0);
    });
}

#[test]
fn retention_by_size_and_time() {
    run(|| async {
        let dir = TempDir::new("retention");
        let (mut log, _) = Log::open(
            dir.0.clone(),
            small_config(),
            fjord_storage::IoEngine::new_fallback(),
        )
        .expect("open");
        fill(&mut log, 100, false).await;
        let segments = log.segment_count();
        assert_eq!(log.enforce_retention(i64::MAX / 2).expect("no limits"), 0);

        let mut config = small_config();
        config.retention_bytes = (log.size_bytes() / 2) as i64;
        log.set_config(config.clone());
        let deleted = log.enforce_retention(0).expect("size");
        assert!(deleted > 0 && log.segment_count() == segments - deleted);
        assert!(
            log.size_bytes() as i64 >= config.retention_bytes,
            "never below the limit"
        );
        let lso = log.log_start_offset();
        assert!(lso > 0);
        assert!(!dir.0.join(format!("{:020}.log", 0)).exists());
        assert!(matches!(
            log.read(0, i64::MAX, 10, true).await,
            Err(StorageError::OffsetOutOfRange { .. })
        ));
        assert_eq!(
            BatchHeader::parse(
                &log.read(lso, i64::MAX, 10, true)
                    .await
                    .expect("read")
                    .records
            )
            .expect("h")
            .base_offset,
            lso
        );

        // Batch i has max timestamp 1_000 + 10 * i + (i % 3): segments whose largest
        // timestamp is below 1_700 expire at now = 2_700.
        config.retention_bytes = -1;
        config.retention_ms = 1_000;
        log.set_config(config);
        let before = log.log_start_offset();
        let deleted = log.enforce_retention(2_700).expect("time");
        assert!(deleted > 0 && log.log_start_offset() > before);
        let timestamps: Vec<i64> = headers_from(&log, 0)
            .await
            .iter()
            .map(|h| h.base_timestamp)
            .collect();
        assert!(timestamps.contains(&1_700), "unexpired batches stay");
        assert!(timestamps[0] > 1_500, "expired ones went");
        let lso = log.log_start_offset();
        drop(log);
        let (log, _) = Log::open(
            dir.0.clone(),
            small_config(),
            fjord_storage::IoEngine::new_fallback(),
        )
        .expect("reopen");
        assert_eq!(
            log.log_start_offset(),
            lso,
            "log start offset survives restart"
        );
        // Everything is past retention: the active segment stays.
        let mut log = log;
        log.set_config(LogConfig {
            retention_ms: 0,
            ..small_config()
        });
        log.enforce_retention(i64::MAX / 2).expect("all");
        assert_eq!(log.segment_count(), 1);
    });
}

#[test]
fn group_commit_resolves_everything_in_order() {
    for (name, engine) in engines() {
        run(|| async move {
            let dir = TempDir::new("group");
            let (mut log, _) = Log::open(dir.0.clone(), small_config(), engine()).expect("open");
            let done = Rc::new(RefCell::new(Vec::new()));
            let mut handles = Vec::new();
            for i in 0..300usize {
                let sync = i % 4 != 3;
                let (_, fut) = log.append_bytes(batch(i), 1, None, sync).expect("append");
                let done = done.clone();
                handles.push(tokio::task::spawn_local(async move {
                    fut.await.expect("durable");
                    done.borrow_mut().push(i);
                }));
                if i % 50 == 49 {
                    tokio::task::yield_now().await;
                }
            }
            for h in handles {
                h.await.expect("task");
            }
            let done = done.borrow();
            assert_eq!(done.len(), 300, "{name}");
            assert!(
                done.windows(2).all(|w| w[0] < w[1]),
                "{name}: resolved in append order"
            );
            assert_eq!(log.written_end_offset(), log.log_end_offset());
            assert!(log.segment_count() > 1);
        });
    }
}

#[test]
fn sync_appends_in_one_turn_share_an_fdatasync() {
    for (name, engine) in engines() {
        run(|| async move {
            let dir = TempDir::new("share");
            let io = engine();
            let config = LogConfig {
                segment_bytes: 1 << 20,
                ..small_config()
            };
            let (mut log, _) = Log::open(dir.0.clone(), config, io.clone()).expect("open");
            let before = io.sync_count();
            let futs: Vec<_> = (0..100)
                .map(|i| log.append_bytes(batch(i), 0, None, true).expect("append").1)
                .collect();
            for f in futs {
                f.await.expect("durable");
            }
            let syncs = io.sync_count() - before;
            assert!(
                (1..=10).contains(&syncs),
                "{name}: 100 sync appends took {syncs} fdatasyncs"
            );
        });
    }
}

#[test]
fn uring_engine_is_used_when_the_kernel_allows_it() {
    run(|| async {
        let available = io_uring::IoUring::new(8).is_ok();
        assert_eq!(
            fjord_storage::IoEngine::new(8).expect("engine").is_uring(),
            available
        );
        assert!(!fjord_storage::IoEngine::new_fallback().is_uring());
        eprintln!("io_uring available: {available}");
    });
}

#[test]
fn log_append_time_and_timestamp_lookups() {
    run(|| async {
        let dir = TempDir::new("timestamps");
        let (mut log, _) = Log::open(
            dir.0.clone(),
            small_config(),
            fjord_storage::IoEngine::new_fallback(),
        )
        .expect("open");
        assert!(log
            .batch_with_max_timestamp()
            .await
            .expect("empty")
            .is_none());
        fill(&mut log, 60, false).await;
        let (info, fut) = log
            .append_bytes(build_batch(5, &[b"late"]), 2, Some(777_777), false)
            .expect("append");
        fut.await.expect("write");
        assert_eq!(
            (info.max_timestamp, info.log_append_time_ms),
            (777_777, 777_777)
        );
        assert_eq!(info.offset_of_max_timestamp, info.last_offset);
        let stored = log
            .read(info.base_offset, i64::MAX, 1 << 20, true)
            .await
            .expect("read")
            .records;
        let h = BatchHeader::parse(&stored).expect("h");
        assert!(h.timestamp_type_log_append() && fjord_storage::batch::crc_is_valid(&stored));
        assert_eq!(h.max_timestamp, 777_777);
        // An older batch after it with a duplicate of an earlier max timestamp.
        let (_, fut) = log
            .append_bytes(build_batch_with(1_000, 1_100, &[b"old"]), 2, None, false)
            .expect("append");
        fut.await.expect("write");

        let max = log
            .batch_with_max_timestamp()
            .await
            .expect("lookup")
            .expect("some");
        assert_eq!(
            BatchHeader::parse(&max).expect("h").base_offset,
            info.base_offset
        );
        // Batch i has max timestamp 1_000 + 10 * i + i % 3; the first >= 1_295 is batch 30
        // (batch 29 tops out at 1_292).
        let b = log
            .batch_for_timestamp(1_295)
            .await
            .expect("lookup")
            .expect("some");
        let h = BatchHeader::parse(&b).expect("h");
        assert_eq!(h.base_timestamp, 1_300);
        let b = log
            .batch_for_timestamp(1_100)
            .await
            .expect("lookup")
            .expect("some");
        assert_eq!(
            BatchHeader::parse(&b).expect("h").base_timestamp,
            1_100,
            "first, not the later duplicate"
        );
        let b = log
            .batch_for_timestamp(i64::MIN)
            .await
            .expect("lookup")
            .expect("some");
        assert_eq!(BatchHeader::parse(&b).expect("h").base_offset, 0);
        assert!(log
            .batch_for_timestamp(777_778)
            .await
            .expect("lookup")
            .is_none());

        let seen: Vec<i64> = headers_from(&log, 5)
            .await
            .iter()
            .map(|h| h.base_offset)
            .collect();
        assert_eq!(
            seen.first(),
            Some(&3),
            "starts with the batch containing offset 5 (3..=5)"
        );
        assert_eq!(seen.len(), 62 - 2);
    });
}

#[test]
fn segment_ms_rolls_on_timestamps() {
    run(|| async {
        let dir = TempDir::new("segms");
        let config = LogConfig {
            segment_ms: 100,
            segment_bytes: 1 << 20,
            ..small_config()
        };
        let (mut log, _) = Log::open(
            dir.0.clone(),
            config,
            fjord_storage::IoEngine::new_fallback(),
        )
        .expect("open");
        for ts in [0i64, 50, 100, 101, 150, 202] {
            let (_, fut) = log
                .append_bytes(build_batch(ts, &[b"v"]), 0, None, false)
                .expect("append");
            fut.await.expect("write");
        }
        // Rolls before 101 (101 - 0 > 100) and before 202 (202 - 101 > 100).
        assert_eq!(log.segment_count(), 3);
    });
}

#[test]
fn rejects_bad_appends_and_deletes() {
    run(|| async {
        let dir = TempDir::new("delete");
        let (mut log, _) = Log::open(
            dir.0.clone(),
            small_config(),
            fjord_storage::IoEngine::new_fallback(),
        )
        .expect("open");
        let b = batch(1);
        assert!(matches!(
            log.append_bytes(BytesMut::from(&b[..b.len() - 1]), 0, None, false),
            Err(StorageError::Corrupt(_))
        ));
        assert!(matches!(
            log.append_bytes(BytesMut::new(), 0, None, false),
            Err(StorageError::Corrupt(_))
        ));
        let h = BatchHeader::parse(&b).expect("h");
        assert!(
            matches!(
                log.append(b.clone(), &[h, h], 0, None, false),
                Err(StorageError::Corrupt(_))
            ),
            "headers must cover the bytes exactly"
        );
        assert!(
            log.advance_log_start_offset(1).is_err(),
            "beyond the log end"
        );
        assert_eq!(log.log_end_offset(), 0);
        log.delete().expect("delete");
        assert!(!dir.0.exists());
    });
}

#[test]
fn reads_run_on_the_engine_and_outlive_retention() {
    for (name, engine) in engines() {
        run(|| async move {
            let dir = TempDir::new("read-async");
            let io = engine();
            let (mut log, _) = Log::open(dir.0.clone(), small_config(), io.clone()).expect("open");
            let stored = fill(&mut log, 100, false).await;
            // The next append evicts the (now written) cache entries.
            let (_, fut) = log
                .append_bytes(batch(100), 0, None, false)
                .expect("append");
            fut.await.expect("write");
            let reads = io.faults().reads();
            let pending = log.read(0, i64::MAX, 1 << 20, true);
            assert!(
                !pending.is_ready(),
                "{name}: disk reads wait for the engine"
            );
            // Retention unlinks the first segment before the read runs.
            log.set_config(LogConfig {
                retention_bytes: 0,
                ..small_config()
            });
            assert!(log.enforce_retention(0).expect("retention") > 0);
            assert!(!dir.0.join(format!("{:020}.log", 0)).exists());
            let r = pending.await.expect("read of an unlinked segment");
            let all = concat(&stored);
            assert!(!r.records.is_empty());
            assert_eq!(&r.records[..], &all[..r.records.len()], "{name}");
            assert!(
                io.faults().reads() > reads,
                "{name}: read through the engine"
            );

            // Tail-cache hits resolve at once without I/O.
            log.set_config(LogConfig {
                tail_cache_bytes: 1 << 20,
                ..small_config()
            });
            let (info, fut) = log.append_bytes(batch(7), 0, None, false).expect("append");
            fut.await.expect("write");
            let reads = io.faults().reads();
            let hit = log.read(info.base_offset, i64::MAX, 1 << 20, true);
            assert!(hit.is_ready());
            let r = hit.await.expect("cache read");
            assert_eq!(
                BatchHeader::parse(&r.records).expect("h").base_offset,
                info.base_offset
            );
            assert_eq!(io.faults().reads(), reads);
        });
    }
}

#[test]
fn recovery_runs_on_another_thread() {
    for (name, engine) in engines() {
        run(|| async move {
            let dir = TempDir::new("recover-thread");
            let (mut log, _) = Log::open(dir.0.clone(), small_config(), engine()).expect("open");
            let stored = fill(&mut log, 40, true).await;
            log.flush().await.expect("flush");
            let leo = log.log_end_offset();
            drop(log);
            let path = dir.0.clone();
            let (recovered, headers) = std::thread::spawn(move || {
                let r = Log::recover(path, small_config()).expect("recover");
                let mut headers = Vec::new();
                r.scan_headers(0, &mut |h| headers.push(h.base_offset))
                    .expect("scan");
                (r, headers)
            })
            .join()
            .expect("recovery thread");
            assert_eq!(recovered.log_end_offset(), leo, "{name}");
            assert_eq!(
                (recovered.truncated_bytes(), recovered.log_start_offset()),
                (0, 0)
            );
            assert_eq!(headers.len(), 40);
            assert_eq!(headers.last(), Some(&(leo - 1 - (39 % 3) as i64)));
            let mut log = Log::from_recovered(recovered, engine());
            assert_eq!(read_all(&log, 0, 1 << 20).await, concat(&stored));
            let (info, fut) = log.append_bytes(batch(0), 1, None, true).expect("append");
            fut.await.expect("durable");
            assert_eq!(info.base_offset, leo);
        });
    }
}
