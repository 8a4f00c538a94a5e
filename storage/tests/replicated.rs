//! A follower's side of `Log` over both I/O engines: replicated appends (offsets and
//! epochs kept), truncation (`truncate_to`, `truncate_fully_and_start_at`) and the
//! synced end.

mod common;

use std::path::Path;

use bytes::{Bytes, BytesMut};
use common::{batch, engines, run, small_config, MakeEngine, TempDir};
use fjord_storage::batch::{
    parse_headers, set_base_offset, set_partition_leader_epoch, split_batches, BatchHeader,
};
use fjord_storage::testing::build_batch;
use fjord_storage::{CompactionConfig, Log, LogConfig, RecordCodec, RecordInfo, StorageError};

/// Test batch `i` as a leader stored it: base offset `base`, leader epoch `epoch`.
fn leader_batch(i: usize, base: i64, epoch: i32) -> Bytes {
    let mut b = batch(i);
    set_base_offset(&mut b, base);
    set_partition_leader_epoch(&mut b, epoch);
    b.freeze()
}

/// `n` leader batches from offset `from`, epoch 1 + i / 20, and with `gaps` a hole of
/// five offsets (compacted away) before every seventh batch.
fn stream(n: usize, from: i64, gaps: bool) -> Vec<Bytes> {
    let mut next = from;
    (0..n)
        .map(|i| {
            if gaps && i % 7 == 6 {
                next += 5;
            }
            let b = leader_batch(i, next, 1 + (i / 20) as i32);
            next = header(&b).next_offset();
            b
        })
        .collect()
}

fn header(b: &[u8]) -> BatchHeader {
    BatchHeader::parse(b).expect("header")
}

fn concat(parts: &[Bytes]) -> Vec<u8> {
    parts.iter().flat_map(|b| b.iter().copied()).collect()
}

/// Appends `batches` with `append_replicated` in groups of 1, 2, 3, 1, ... batches,
/// awaiting every append.
async fn replicate(log: &mut Log, batches: &[Bytes], sync: bool) {
    let mut at = 0;
    let mut group = 1;
    while at < batches.len() {
        let end = (at + group).min(batches.len());
        let records = BytesMut::from(&concat(&batches[at..end])[..]);
        let headers = parse_headers(&records).expect("headers");
        let (info, fut) = log
            .append_replicated(records, &headers, sync)
            .expect("append");
        assert_eq!(info.base_offset, headers[0].base_offset);
        assert_eq!(info.last_offset, headers[headers.len() - 1].last_offset());
        assert_eq!(info.log_append_time_ms, -1);
        fut.await.expect("write");
        at = end;
        group = group % 3 + 1;
    }
}

/// Everything from `from` by repeated fetches of `max_bytes`.
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
            offset = header(&r.records[range]).next_offset();
        }
        out.extend_from_slice(&r.records);
    }
    out
}

/// Checks the log holds exactly `expected` (from the log start), ends where they end
/// (or at `end` when given) and answers a one-batch read at every offset around `cut`
/// with the batch holding it (or the next one, in a gap).
async fn check(log: &Log, expected: &[Bytes], end: i64, cut: i64, what: &str) {
    assert_eq!(log.log_end_offset(), end, "{what}: log end");
    assert_eq!(log.written_end_offset(), end, "{what}: written end");
    assert!(log.synced_end_offset() <= end, "{what}: synced end");
    let start = log.log_start_offset();
    for max_bytes in [1, 700, 1 << 20] {
        assert_eq!(
            read_all(log, start, max_bytes).await,
            concat(expected),
            "{what}: contents (max_bytes {max_bytes})"
        );
    }
    for offset in (cut - 8).max(start)..end {
        let r = log.read(offset, i64::MAX, 1, true).await.expect("read");
        let want = expected
            .iter()
            .find(|b| header(b).last_offset() >= offset)
            .expect("a batch holds or follows every offset below the end");
        assert_eq!(&r.records, want, "{what}: read at {offset}");
    }
    let at_end = log.read(end, i64::MAX, 1, true).await.expect("read at end");
    assert!(at_end.records.is_empty(), "{what}: nothing at the end");
    assert!(
        matches!(
            log.read(end + 1, i64::MAX, 1, true).await,
            Err(StorageError::OffsetOutOfRange { .. })
        ),
        "{what}: nothing past the end"
    );
    // The largest timestamp follows the cut.
    let max = expected.iter().map(|b| header(b).max_timestamp).max();
    let first_max = max.and_then(|m| expected.iter().find(|b| header(b).max_timestamp == m));
    assert_eq!(
        log.batch_with_max_timestamp().await.expect("lookup"),
        first_max.cloned(),
        "{what}: batch with the max timestamp"
    );
}

/// Base offsets of the `.log` files in `dir`, sorted; fails on staged leftovers.
fn segment_files(dir: &Path) -> Vec<i64> {
    let mut bases: Vec<i64> = std::fs::read_dir(dir)
        .expect("dir")
        .map(|e| e.expect("entry").file_name().into_string().expect("utf8"))
        .inspect(|name| assert!(!name.ends_with(".new"), "staged file {name} left"))
        .filter_map(|name| name.strip_suffix(".log").map(|s| s.parse().expect("base")))
        .collect();
    bases.sort_unstable();
    bases
}

/// Every `.index` entry of `dir` points at a batch whose last offset is the entry's
/// offset, and every `.timeindex` entry names a batch carrying its timestamp.
fn check_index_files(dir: &Path, what: &str) {
    for base in segment_files(dir) {
        let path = |ext: &str| dir.join(format!("{base:020}.{ext}"));
        let log = std::fs::read(path("log")).expect("log");
        let index = std::fs::read(path("index")).expect("index");
        let time = std::fs::read(path("timeindex")).expect("timeindex");
        assert_eq!((index.len() % 8, time.len() % 12), (0, 0), "{what}");
        let headers: Vec<BatchHeader> = split_batches(&log)
            .expect("log parses")
            .into_iter()
            .map(|r| header(&log[r]))
            .collect();
        for entry in index.chunks(8) {
            let rel = u32::from_be_bytes(entry[..4].try_into().expect("4"));
            let pos = u32::from_be_bytes(entry[4..].try_into().expect("4")) as usize;
            assert!(
                pos < log.len(),
                "{what}: index entry past segment {base}'s log"
            );
            assert_eq!(
                header(&log[pos..]).last_offset(),
                base + i64::from(rel),
                "{what}: index entry of segment {base}"
            );
        }
        for entry in time.chunks(12) {
            let ts = i64::from_be_bytes(entry[..8].try_into().expect("8"));
            let rel = u32::from_be_bytes(entry[8..].try_into().expect("4"));
            assert!(
                headers
                    .iter()
                    .any(|h| h.last_offset() == base + i64::from(rel) && h.max_timestamp == ts),
                "{what}: time index entry ({ts}, {rel}) of segment {base}"
            );
        }
    }
}

fn recovery_point(dir: &Path) -> i64 {
    std::fs::read_to_string(dir.join("fjord-recovery-point"))
        .expect("recovery point")
        .trim()
        .parse()
        .expect("offset")
}

fn reopen(dir: &Path, config: LogConfig, engine: MakeEngine) -> Log {
    let recovered = Log::recover(dir.to_path_buf(), config).expect("recover");
    Log::from_recovered(recovered, engine())
}

/// Awaits everything of `log`, drops it, recovers the directory and checks the
/// recovered log against `expected`.
async fn check_recovered(
    mut log: Log,
    dir: &Path,
    config: &LogConfig,
    engine: MakeEngine,
    expected: &[Bytes],
    what: &str,
) -> Log {
    log.settled().await;
    let (start, end) = (log.log_start_offset(), log.log_end_offset());
    drop(log);
    let log = reopen(dir, config.clone(), engine);
    assert_eq!(
        (log.log_start_offset(), log.log_end_offset()),
        (start, end),
        "{what}: recovered start and end"
    );
    assert_eq!(
        read_all(&log, start, 1 << 20).await,
        concat(expected),
        "{what}: recovered contents"
    );
    log
}

#[test]
fn append_replicated_keeps_offsets_and_epochs() {
    for (name, engine) in engines() {
        run(|| async move {
            let dir = TempDir::new("replicated");
            let config = small_config();
            let mut log = reopen(&dir.0, config.clone(), engine);
            let input = stream(80, 0, true);
            replicate(&mut log, &input, false).await;
            let end = header(&input[79]).next_offset();
            check(&log, &input, end, end, name).await;
            assert!(log.segment_count() > 3, "{name}: rolled");
            // Kafka rolls at the first base offset of the append that does not fit.
            let bases: Vec<i64> = input.iter().map(|b| header(b).base_offset).collect();
            for base in segment_files(&dir.0) {
                assert!(
                    bases.contains(&base),
                    "{name}: segment {base} starts a batch"
                );
            }

            // Overlapping the end, or going backwards inside an append: refused whole.
            let size = log.size_bytes();
            let overlap = leader_batch(80, end - 1, 9);
            let h = header(&overlap);
            match log.append_replicated(BytesMut::from(&overlap[..]), &[h], false) {
                Err(StorageError::NonMonotonicOffset {
                    expected_at_least,
                    found,
                }) => assert_eq!((expected_at_least, found), (end, end - 1), "{name}"),
                other => panic!("{name}: overlap accepted: {:?}", other.map(|r| r.0)),
            }
            let first = leader_batch(81, end + 10, 9);
            let backwards = leader_batch(82, header(&first).last_offset(), 9);
            let records = BytesMut::from(&concat(&[first.clone(), backwards])[..]);
            let headers = parse_headers(&records).expect("headers");
            match log.append_replicated(records, &headers, false) {
                Err(StorageError::NonMonotonicOffset {
                    expected_at_least,
                    found,
                }) => assert_eq!(
                    (expected_at_least, found),
                    (header(&first).next_offset(), header(&first).last_offset())
                ),
                other => panic!("{name}: backwards accepted: {:?}", other.map(|r| r.0)),
            }
            assert_eq!((log.log_end_offset(), log.size_bytes()), (end, size));
            check(&log, &input, end, end, name).await;

            // A gap at the end is kept; the stored bytes are the leader's.
            let mut all = input.clone();
            all.push(first.clone());
            replicate(&mut log, std::slice::from_ref(&first), true).await;
            assert_eq!(log.log_end_offset(), header(&first).next_offset());
            assert_eq!(log.synced_end_offset(), log.log_end_offset(), "{name}");
            let r = log
                .read(end, i64::MAX, 1 << 20, true)
                .await
                .expect("read in the gap");
            assert_eq!(r.records, first, "{name}: the batch after the gap");
            check_recovered(log, &dir.0, &config, engine, &all, name).await;
        });
    }
}

#[test]
fn a_follower_copy_is_byte_identical_to_the_leader() {
    for (name, engine) in engines() {
        run(|| async move {
            let leader_dir = TempDir::new("leader");
            let follower_dir = TempDir::new("follower");
            let config = small_config();
            let mut leader = reopen(&leader_dir.0, config.clone(), engine);
            for i in 0..150 {
                let epoch = 1 + (i / 40) as i32;
                let (_, fut) = leader
                    .append_bytes(batch(i), epoch, None, false)
                    .expect("append");
                fut.await.expect("write");
            }
            assert!(leader.segment_count() > 3, "{name}");
            let mut follower = reopen(&follower_dir.0, config.clone(), engine);
            let mut offset = 0;
            while offset < leader.log_end_offset() {
                let one = leader
                    .read(offset, i64::MAX, 1, true)
                    .await
                    .expect("fetch")
                    .records;
                offset = header(&one).next_offset();
                replicate(&mut follower, &[one], false).await;
            }
            assert_eq!(follower.log_end_offset(), leader.log_end_offset());
            leader.flush().await.expect("flush");
            follower.flush().await.expect("flush");
            let bases = segment_files(&leader_dir.0);
            assert_eq!(
                segment_files(&follower_dir.0),
                bases,
                "{name}: same segments"
            );
            for base in bases {
                for ext in ["log", "index", "timeindex"] {
                    let file = format!("{base:020}.{ext}");
                    assert_eq!(
                        std::fs::read(follower_dir.0.join(&file)).expect("follower file"),
                        std::fs::read(leader_dir.0.join(&file)).expect("leader file"),
                        "{name}: {file}"
                    );
                }
            }
        });
    }
}

/// A log of `n` replicated batches (with gaps when `gaps`), its batches and its end.
async fn filled(
    dir: &Path,
    config: &LogConfig,
    engine: MakeEngine,
    n: usize,
    gaps: bool,
) -> (Log, Vec<Bytes>) {
    let mut log = reopen(dir, config.clone(), engine);
    let input = stream(n, 0, gaps);
    replicate(&mut log, &input, false).await;
    (log, input)
}

/// The batches that remain after truncating `batches` at `offset`.
fn kept(batches: &[Bytes], offset: i64) -> Vec<Bytes> {
    batches
        .iter()
        .take_while(|b| header(b).last_offset() < offset)
        .cloned()
        .collect()
}

fn end_of(batches: &[Bytes], otherwise: i64) -> i64 {
    batches
        .last()
        .map_or(otherwise, |b| header(b).next_offset())
}

/// Truncates at `offset`, checks the log, appends with both appends, checks a recovery.
async fn truncate_and_check(
    dir: &Path,
    config: &LogConfig,
    engine: MakeEngine,
    gaps: bool,
    offset: impl Fn(&[Bytes]) -> i64,
    what: &str,
) {
    let (mut log, input) = filled(dir, config, engine, 90, gaps).await;
    let offset = offset(&input);
    let segments_before = segment_files(dir);
    let leo = log.log_end_offset();
    let fut = log.truncate_to(offset).expect("truncate");
    let mut expected = kept(&input, offset);
    let end = if offset >= leo {
        leo
    } else {
        end_of(&expected, offset)
    };
    check(&log, &expected, end, offset, what).await;
    fut.await.expect("durable");
    log.settled().await;
    let segments = segment_files(dir);
    assert_eq!(
        segments,
        segments_before
            .iter()
            .copied()
            .filter(|&b| b < offset || offset >= leo)
            .collect::<Vec<_>>(),
        "{what}: segments at or above the cut are gone"
    );
    let active = *segments.last().expect("a segment");
    assert_eq!(recovery_point(dir), active, "{what}: recovery point");
    let on_disk: u64 = segments
        .iter()
        .map(|b| {
            std::fs::metadata(dir.join(format!("{b:020}.log")))
                .expect("meta")
                .len()
        })
        .sum();
    assert_eq!(
        on_disk as usize,
        concat(&expected).len(),
        "{what}: file sizes"
    );
    assert_eq!(log.size_bytes(), on_disk);
    check_index_files(dir, what);
    check(&log, &expected, end, offset, what).await;

    // Both appends continue at the new end.
    let (info, fut) = log.append_bytes(batch(200), 7, None, true).expect("append");
    fut.await.expect("durable");
    assert_eq!(info.base_offset, end, "{what}: append at the new end");
    expected.push(
        log.read(end, i64::MAX, 1, true)
            .await
            .expect("read")
            .records,
    );
    let next = leader_batch(201, info.last_offset + 3, 8);
    replicate(&mut log, std::slice::from_ref(&next), true).await;
    expected.push(next);
    let end = log.log_end_offset();
    check(&log, &expected, end, offset, what).await;
    let log = check_recovered(log, dir, config, engine, &expected, what).await;
    check(&log, &expected, end, offset, what).await;
}

#[test]
fn truncate_to_cuts_at_batch_granularity() {
    // Offsets of stream(90, 0, false): batch i holds 1 + i % 3 records.
    type Case = (&'static str, bool, fn(&[Bytes]) -> i64);
    let cases: [Case; 8] = [
        ("active segment, batch boundary", false, |b| {
            header(&b[b.len() - 4]).base_offset
        }),
        ("active segment, inside a batch", false, |b| {
            let h = header(&b[b.len() - 2]);
            assert!(h.last_offset_delta > 0);
            h.base_offset + 1
        }),
        ("several segments, inside a batch", false, |b| {
            header(&b[20]).last_offset()
        }),
        ("a batch in a middle segment", false, |b| {
            header(&b[b.len() / 2]).base_offset
        }),
        ("the log end: no-op", false, |b| end_of(b, 0)),
        ("past the log end: no-op", false, |b| end_of(b, 0) + 10),
        ("just after the first batch", false, |_| 1),
        ("the batch after a gap goes with the gap", true, |b| {
            let h = header(&b[13]);
            assert!(
                h.base_offset > header(&b[12]).next_offset(),
                "a gap before 13"
            );
            h.base_offset + 1
        }),
    ];
    for (name, engine) in engines() {
        for cache in [0usize, 1 << 20] {
            let config = LogConfig {
                tail_cache_bytes: cache,
                ..small_config()
            };
            for (what, gaps, offset) in cases {
                let config = config.clone();
                run(|| async move {
                    let dir = TempDir::new("truncate");
                    let what = format!("{name} cache={cache}: {what}");
                    truncate_and_check(&dir.0, &config, engine, gaps, offset, &what).await;
                });
            }
            // Exactly at a segment's base offset, found from a copy of the log.
            let config = config.clone();
            run(|| async move {
                let probe = TempDir::new("truncate-probe");
                let (mut log, _) = filled(&probe.0, &config, engine, 90, false).await;
                log.settled().await;
                let bases = segment_files(&probe.0);
                assert!(bases.len() > 3);
                let third = bases[2];
                let dir = TempDir::new("truncate-boundary");
                let what = format!("{name} cache={cache}: segment base {third}");
                truncate_and_check(&dir.0, &config, engine, false, move |_| third, &what).await;
            });
        }
    }
}

#[test]
fn truncate_to_the_log_start_empties_the_log_there() {
    for (name, engine) in engines() {
        run(|| async move {
            let dir = TempDir::new("truncate-start");
            let config = small_config();
            let (mut log, input) = filled(&dir.0, &config, engine, 90, false).await;
            // Batch 32 holds three records; the log starts at its second.
            let start = header(&input[32]).base_offset + 1;
            log.advance_log_start_offset(start).expect("advance");
            // The batch holding the cut begins below the log start: nothing is left.
            let fut = log.truncate_to(start + 1).expect("truncate");
            fut.await.expect("durable");
            assert_eq!(
                (log.log_start_offset(), log.log_end_offset()),
                (start + 1, start + 1),
                "{name}"
            );
            assert_eq!(segment_files(&dir.0), vec![start + 1]);
            check_recovered(log, &dir.0, &config, engine, &[], name).await;

            let dir = TempDir::new("truncate-start-empty");
            let (mut log, _) = filled(&dir.0, &config, engine, 0, false).await;
            let noop = log.truncate_to(0).expect("an empty log: no-op");
            noop.await.expect("no-op");
            let stored = stream(40, 100, false);
            replicate(&mut log, &stored, false).await;
            log.advance_log_start_offset(120).expect("advance");
            let fut = log.truncate_to(120).expect("truncate to the start");
            fut.await.expect("durable");
            assert_eq!(
                (log.log_start_offset(), log.log_end_offset()),
                (120, 120),
                "{name}"
            );
            check_recovered(log, &dir.0, &config, engine, &[], name).await;
        });
    }
}

#[test]
fn truncate_fully_and_start_at_then_recover() {
    for (name, engine) in engines() {
        // Above the old end, at the first segment's base, and below the log start.
        for (offset, advance) in [(5_000i64, 0i64), (0, 0), (20, 60)] {
            run(|| async move {
                let dir = TempDir::new("truncate-fully");
                let config = small_config();
                let (mut log, _) = filled(&dir.0, &config, engine, 90, false).await;
                if advance > 0 {
                    log.advance_log_start_offset(advance).expect("advance");
                }
                assert!(log.segment_count() > 3);
                let fut = log.truncate_fully_and_start_at(offset).expect("truncate");
                assert!(
                    log.append_bytes(batch(0), 1, None, false).is_err(),
                    "{name}: appends wait for the truncation"
                );
                fut.await.expect("durable");
                assert_eq!(
                    (log.log_start_offset(), log.log_end_offset()),
                    (offset, offset)
                );
                assert_eq!(log.segment_count(), 1);
                assert_eq!(segment_files(&dir.0), vec![offset], "{name}");
                assert_eq!(recovery_point(&dir.0), offset);
                let mut log = check_recovered(log, &dir.0, &config, engine, &[], name).await;
                assert_eq!(log.log_start_offset(), offset, "{name}: start survives");

                let (info, fut) = log.append_bytes(batch(1), 4, None, true).expect("append");
                fut.await.expect("durable");
                assert_eq!(info.base_offset, offset, "{name}");
                let mut expected = vec![
                    log.read(offset, i64::MAX, 1, true)
                        .await
                        .expect("read")
                        .records,
                ];
                let more = stream(30, info.last_offset + 1, true);
                replicate(&mut log, &more, false).await;
                expected.extend(more);
                let end = log.log_end_offset();
                check(&log, &expected, end, end, name).await;
                check_recovered(log, &dir.0, &config, engine, &expected, name).await;
            });
        }
    }
}

#[test]
fn truncation_waits_for_appends_and_appends_wait_for_it() {
    for (name, engine) in engines() {
        run(|| async move {
            let dir = TempDir::new("truncate-busy");
            let config = small_config();
            let io = engine();
            let (mut log, _) = Log::open(dir.0.clone(), config.clone(), io.clone()).expect("open");
            let input = stream(30, 0, false);
            replicate(&mut log, &input, false).await;
            let leo = log.log_end_offset();

            io.faults()
                .delay_writes(Some(std::time::Duration::from_millis(30)));
            let next = stream(1, leo, false);
            let records = BytesMut::from(&next[0][..]);
            let headers = parse_headers(&records).expect("headers");
            let (_, pending) = log
                .append_replicated(records, &headers, false)
                .expect("append");
            assert!(
                matches!(log.truncate_to(5), Err(StorageError::Busy(_))),
                "{name}: refused while an append is in flight"
            );
            assert!(matches!(
                log.truncate_fully_and_start_at(5),
                Err(StorageError::Busy(_))
            ));
            pending.await.expect("write");
            io.faults().delay_writes(None);
            // So does a flush.
            let flush = log.flush();
            assert!(matches!(log.truncate_to(5), Err(StorageError::Busy(_))));
            flush.await.expect("flush");
            let end = log.log_end_offset();
            assert_eq!(end, header(&next[0]).next_offset());

            io.faults()
                .delay_syncs(Some(std::time::Duration::from_millis(20)));
            let fut = log.truncate_to(5).expect("nothing in flight");
            let end = log.log_end_offset();
            assert!(end <= 5);
            assert!(
                matches!(
                    log.append_bytes(batch(1), 2, None, false),
                    Err(StorageError::Busy(_))
                ),
                "{name}: appends wait for the truncation's files"
            );
            assert!(matches!(log.truncate_to(1), Err(StorageError::Busy(_))));
            fut.await.expect("durable");
            io.faults().delay_syncs(None);
            let (info, fut) = log.append_bytes(batch(1), 2, None, false).expect("append");
            fut.await.expect("write");
            assert_eq!(info.base_offset, end, "{name}");
        });
    }
}

#[test]
fn truncation_while_rolled_segments_are_made_durable() {
    for (name, engine) in engines() {
        run(|| async move {
            let dir = TempDir::new("truncate-rolls");
            let config = small_config();
            let io = engine();
            let (mut log, _) = Log::open(dir.0.clone(), config.clone(), io.clone()).expect("open");
            // Roll tasks stay busy in their syncs while the log is truncated.
            io.faults()
                .delay_syncs(Some(std::time::Duration::from_millis(15)));
            let input = stream(90, 0, false);
            replicate(&mut log, &input, false).await;
            assert!(log.segment_count() > 3);
            let offset = header(&input[15]).base_offset;
            let fut = log.truncate_to(offset).expect("truncate");
            fut.await.expect("durable");
            log.settled().await;
            io.faults().delay_syncs(None);
            let active = *segment_files(&dir.0).last().expect("a segment");
            assert_eq!(
                recovery_point(&dir.0),
                active,
                "{name}: no roll task moved the recovery point above the cut"
            );
            check_index_files(&dir.0, name);
            let expected = kept(&input, offset);
            assert!(log.synced_end_offset() <= log.log_end_offset());
            check(&log, &expected, offset, offset, name).await;
            let mut log = check_recovered(log, &dir.0, &config, engine, &expected, name).await;
            replicate(&mut log, &input[15..], false).await;
            check_recovered(log, &dir.0, &config, engine, &input, name).await;
        });
    }
}

#[test]
fn synced_end_follows_syncs_and_rolls() {
    for (name, engine) in engines() {
        run(|| async move {
            let dir = TempDir::new("synced");
            let config = LogConfig {
                segment_bytes: 1 << 20,
                ..small_config()
            };
            let mut log = reopen(&dir.0, config, engine);
            let input = stream(10, 0, false);
            replicate(&mut log, &input[..5], false).await;
            assert_eq!(log.written_end_offset(), log.log_end_offset());
            assert_eq!(log.synced_end_offset(), 0, "{name}: nothing synced yet");
            replicate(&mut log, &input[5..], true).await;
            assert_eq!(log.synced_end_offset(), log.log_end_offset(), "{name}");

            // Rolled segments count once their background task has synced them.
            log.set_config(small_config());
            let more = stream(60, log.log_end_offset(), false);
            replicate(&mut log, &more, false).await;
            assert!(log.segment_count() > 2);
            assert!(log.synced_end_offset() < log.written_end_offset());
            log.settled().await;
            let active = *segment_files(&dir.0).last().expect("a segment");
            assert_eq!(
                log.synced_end_offset(),
                active,
                "{name}: every rolled segment is synced"
            );
            log.flush().await.expect("flush");
            assert_eq!(log.synced_end_offset(), log.log_end_offset());
        });
    }
}

/// Single-record test batches: the key is the batch's timestamp modulo 7.
struct ModuloKeys;

impl RecordCodec for ModuloKeys {
    fn records(&self, batch: &[u8]) -> Result<Vec<RecordInfo>, String> {
        let h = BatchHeader::parse(batch).map_err(|e| e.to_string())?;
        Ok(vec![RecordInfo {
            offset: h.base_offset,
            timestamp: h.base_timestamp,
            key: Some(Bytes::from((h.base_timestamp % 7).to_string())),
            value: Some(Bytes::from_static(b"v")),
        }])
    }

    fn retain(&self, batch: &[u8], keep: &dyn Fn(i64) -> bool) -> Result<Option<Vec<u8>>, String> {
        let h = BatchHeader::parse(batch).map_err(|e| e.to_string())?;
        Ok(keep(h.base_offset).then(|| batch.to_vec()))
    }

    fn recompress(&self, _: &[u8], _: u8) -> Result<Vec<u8>, String> {
        Err("unused".into())
    }

    fn encode(&self, _: &[(Bytes, Option<Bytes>)], _: i64) -> Result<Vec<u8>, String> {
        Err("unused".into())
    }
}

#[test]
fn a_cleaning_planned_before_a_truncation_installs_nothing() {
    for (name, engine) in engines() {
        run(|| async move {
            let dir = TempDir::new("truncate-clean");
            let config = small_config();
            let mut log = reopen(&dir.0, config.clone(), engine);
            // Same sizes, different bytes: the new leader's batches after the cut.
            let one = |i: usize, tag: &str| {
                let value = format!("{tag}-{i:04}");
                build_batch(1_000 + i as i64, &[value.as_bytes()])
            };
            for i in 0..60 {
                let (_, fut) = log
                    .append(one(i, "old"), &[header(&one(i, "old"))], 1, None, false)
                    .expect("append");
                fut.await.expect("write");
            }
            log.settled().await;
            let compaction = CompactionConfig {
                min_cleanable_dirty_ratio: 0.0,
                ..CompactionConfig::default()
            };
            let plan = log
                .plan_cleaning(&compaction, i64::MAX / 2)
                .expect("a round is due");
            let outcome = plan.run(&ModuloKeys).expect("clean");
            assert!(outcome.records_removed > 0);

            let fut = log.truncate_to(5).expect("truncate");
            fut.await.expect("durable");
            for i in 5..60 {
                let (_, fut) = log
                    .append(one(i, "new"), &[header(&one(i, "new"))], 2, None, false)
                    .expect("append");
                fut.await.expect("write");
            }
            log.settled().await;
            let before = read_all(&log, 0, 1 << 20).await;
            assert_eq!(log.install_cleaned(outcome).expect("install"), 0, "{name}");
            assert_eq!(
                read_all(&log, 0, 1 << 20).await,
                before,
                "{name}: new records stay"
            );
            for entry in std::fs::read_dir(&dir.0).expect("dir") {
                let file = entry.expect("entry").file_name();
                assert!(!file.to_string_lossy().ends_with(".cleaned"), "{name}");
            }
        });
    }
}
